/**
 * The three request shapes of lm-evaluation-harness's log-likelihood tasks, as plain data.
 *
 * - `choice` (lm-eval `multiple_choice`): one context, several continuations; each choice is scored by the summed
 *   log-likelihood of `delimiter + choice` given the context.
 * - `partial` (Winogrande's partial scoring): several contexts, one shared continuation; each option is scored by the
 *   log-likelihood of `delimiter + continuation` given that option's context.
 * - `loglikelihood` (LAMBADA): one context, one continuation; scored for its log-likelihood and for whether greedy
 *   decoding reproduces it token for token.
 */
export interface ChoiceItem {
  kind: 'choice';
  context: string;
  choices: string[];
  /** Index of the correct choice. */
  gold: number;
}

export interface PartialItem {
  kind: 'partial';
  contexts: string[];
  continuation: string;
  /** Index of the correct context. */
  gold: number;
}

export interface LoglikelihoodItem {
  kind: 'loglikelihood';
  context: string;
  continuation: string;
}

export type TaskItem = ChoiceItem | PartialItem | LoglikelihoodItem;

/**
 * Metric names follow lm-eval: `acc` (argmax of summed log-likelihoods; for `loglikelihood` items: greedy match),
 * `acc_norm` (argmax of log-likelihood / character length of the choice), `perplexity` (exp of minus the mean
 * per-item log-likelihood, lm-eval's `perplexity` aggregation).
 */
export type MetricName = 'acc' | 'acc_norm' | 'perplexity';

export interface Task {
  /** Short name, e.g. `hellaswag`. */
  name: string;
  /** File(s) the items came from. */
  source: string;
  /** The prompt format, human-readable (lm-eval's `doc_to_text` / `doc_to_choice` / `doc_to_target`). */
  prompt: string;
  /** lm-eval `target_delimiter`: put between context and continuation. Default `' '`. */
  delimiter: string;
  metrics: MetricName[];
  items: TaskItem[];
}
