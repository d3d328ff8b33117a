/**
 * Chat prompts: the model's own chat template (`chat_template` in the `tokenizer_config.json` beside it) rendered with
 * a maintained Jinja implementation (`@huggingface/jinja`), as transformers' `apply_chat_template` does with
 * `add_generation_prompt=True`. The BOS token is added as a token id when the prompt is encoded, so the template gets
 * an empty `bos_token` (a BOS rendered as text would be encoded as literal characters by some tokenizers).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { FormatError, OptionError } from '../errors.js';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplate {
  /** Where the template came from. */
  file: string;
  render(messages: readonly ChatMessage[]): string;
}

/**
 * The chat template of the model at `modelPath` (a model file or folder), or null when its folder has no
 * `tokenizer_config.json` with a `chat_template`. A malformed file or template is a {@link FormatError}.
 */
export function loadChatTemplate(modelPath: string, eosToken = ''): ChatTemplate | null {
  const dir = fs.existsSync(modelPath) && fs.statSync(modelPath).isDirectory() ? modelPath : path.dirname(modelPath);
  const file = path.join(dir, 'tokenizer_config.json');
  if (!fs.existsSync(file)) return null;
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new FormatError(file, `invalid JSON (${(e as Error).message})`);
  }
  const raw = cfg.chat_template;
  const text = Array.isArray(raw)
    ? (raw.find((t: { name?: string }) => t?.name === 'default') as { template?: string } | undefined)?.template
    : raw;
  if (text === undefined || text === null) return null;
  if (typeof text !== 'string') throw new FormatError(file, "field 'chat_template' must be a string or a list of {name, template}");
  let tpl: Template;
  try {
    tpl = new Template(text);
  } catch (e) {
    throw new FormatError(file, `chat_template does not parse (${(e as Error).message})`);
  }
  const eos = typeof cfg.eos_token === 'string' ? cfg.eos_token : eosToken;
  return {
    file,
    render(messages) {
      try {
        return tpl.render({ messages, bos_token: '', eos_token: eos, add_generation_prompt: true });
      } catch (e) {
        throw new OptionError('messages', `the chat template of ${file} failed on these messages (${(e as Error).message})`);
      }
    },
  };
}
