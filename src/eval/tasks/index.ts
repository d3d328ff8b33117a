/**
 * The built-in zero-shot tasks and their loaders. Each loader reads the task's full file(s) from a task folder laid
 * out like `../shared/data/tasks` (see `../shared/SOURCES.md`) and documents its lm-eval prompt format.
 *
 * @example
 * ```ts
 * const task = loadBuiltinTask('piqa', defaultTaskDir());
 * console.log(task.items.length); // 1838
 * ```
 */
import { OptionError } from '../../errors.js';
import { loadArc } from './arc.js';
import { loadBoolq } from './boolq.js';
import { loadHellaswag } from './hellaswag.js';
import { loadLambada } from './lambada.js';
import { loadOpenbookqa } from './openbookqa.js';
import { loadPiqa } from './piqa.js';
import { loadWinogrande } from './winogrande.js';
import type { Task } from './types.js';

export type { Task, TaskItem, ChoiceItem, PartialItem, LoglikelihoodItem, MetricName } from './types.js';
export { defaultTaskDir } from './common.js';

/** Built-in task name → loader (given the task folder). */
export const BUILTIN_TASKS: Readonly<Record<string, (taskDir: string) => Task>> = Object.freeze({
  hellaswag: loadHellaswag,
  piqa: loadPiqa,
  arc_easy: (d: string) => loadArc(d, 'easy'),
  arc_challenge: (d: string) => loadArc(d, 'challenge'),
  boolq: loadBoolq,
  openbookqa: loadOpenbookqa,
  winogrande: loadWinogrande,
  lambada_openai: loadLambada,
});

export const BUILTIN_TASK_NAMES = Object.freeze(Object.keys(BUILTIN_TASKS));

export function isBuiltinTask(name: string): boolean {
  return Object.hasOwn(BUILTIN_TASKS, name);
}

/** Load a built-in task by name (`lambada` is accepted for `lambada_openai`). */
export function loadBuiltinTask(name: string, taskDir: string): Task {
  const key = name === 'lambada' ? 'lambada_openai' : name;
  if (!isBuiltinTask(key)) {
    throw new OptionError('--tasks', `unknown task '${name}' (built-in: ${BUILTIN_TASK_NAMES.join(', ')}; or a path to a task spec .json)`);
  }
  return BUILTIN_TASKS[key](taskDir);
}
