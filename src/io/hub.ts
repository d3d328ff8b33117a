/**
 * Hugging Face repo ids (`org/name` or `org/name@revision`) resolved offline in the local Hugging Face cache, as
 * transformers does with `HF_HUB_OFFLINE=1`: the cache is `HF_HUB_CACHE`, else `HF_HOME/hub`, else
 * `~/.cache/huggingface/hub`; a repo lives in `models--org--name/`, `refs/<revision>` holds the commit hash of a
 * branch or tag, and `snapshots/<hash>/` holds the files. A path that exists is never taken for a repo id.
 *
 * @example
 * resolveModelSpec('TinyLlama/TinyLlama-1.1B-Chat-v1.0');      // …/snapshots/<hash of main>
 * resolveModelSpec('TinyLlama/TinyLlama-1.1B-Chat-v1.0@v1.0'); // the snapshot of tag v1.0
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IoError } from '../errors.js';

const REPO_ID = /^([A-Za-z0-9][\w.-]*)\/([\w.-]+)(?:@([\w./-]+))?$/;

/** The folder the local Hugging Face cache keeps repos in. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return path.join(env.HF_HOME, 'hub');
  return path.join(os.homedir(), '.cache', 'huggingface', 'hub');
}

/** `spec` itself when it exists (or does not look like a repo id), else the cached snapshot folder of that repo id. */
export function resolveModelSpec(spec: string, env: NodeJS.ProcessEnv = process.env): string {
  const m = REPO_ID.exec(spec);
  if (!m || fs.existsSync(spec)) return spec;
  const [, org, name, revision = 'main'] = m;
  const cache = hubCacheDir(env);
  const repo = path.join(cache, `models--${org}--${name}`);
  const looked: string[] = [repo];
  let commit = /^[0-9a-f]{40}$/.test(revision) ? revision : null;
  if (!commit) {
    const ref = path.join(repo, 'refs', revision);
    looked.push(ref);
    try {
      commit = fs.readFileSync(ref, 'utf8').trim();
    } catch {
      commit = null;
    }
  }
  const snap = commit ? path.join(repo, 'snapshots', commit) : null;
  if (snap) looked.push(snap);
  if (!snap || !fs.existsSync(path.join(snap, 'config.json'))) {
    throw new IoError(spec, `not a file or folder, and not in the local Hugging Face cache (looked in ${looked.join(', ')}; the cache is ` +
      `HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub; nothing is downloaded)`);
  }
  return snap;
}
