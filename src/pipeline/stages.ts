/**
 * Stage bookkeeping of a pipeline run: each stage writes `<out>/<stage>/stage.json` atomically when it finishes; a
 * rerun with `resume` and the same settings reuses finished stages. A previous run's results are never overwritten
 * unless forced, and then only what the pipeline wrote (the output policy of `io/output.ts`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../report/plot.js';
import { OutputError } from '../errors.js';
import { OutputFolder } from '../io/output.js';

export const STAGES = ['analyze', 'share', 'distill', 'evaluate', 'report'] as const;
export type Stage = (typeof STAGES)[number];

interface StageRecord {
  stage: Stage;
  fingerprint: string;
  finishedAt: string;
  result: unknown;
}

export class PipelineRun {
  readonly skipped: string[] = [];
  private folder: OutputFolder | undefined;

  constructor(
    readonly out: string, private readonly fingerprint: string,
    readonly note: (stage: string, state: 'start' | 'skip' | 'done', detail?: string) => void,
  ) {}

  /**
   * Take the output folder under the output policy (new, or an earlier pipeline run there with `resume` / `force`);
   * a resumed run must have the same settings and be unfinished.
   */
  prepare(o: { force?: boolean; resume?: boolean; inputs: readonly (string | null | undefined)[] }): void {
    const { out } = this;
    this.folder = OutputFolder.open(out, {
      command: 'pipeline', force: o.force, resume: o.resume, resumable: true, inputs: o.inputs.map((i) => i ?? undefined),
    });
    try {
      this.checkResumable();
    } catch (e) {
      this.folder.close();
      throw e;
    }
    writeFileAtomic(path.join(out, 'pipeline.json'), `${JSON.stringify({ format: 'echoatt-pipeline/2', fingerprint: this.fingerprint }, null, 2)}\n`);
  }

  private checkResumable(): void {
    const { out } = this;
    const marker = path.join(out, 'pipeline.json');
    if (this.folder!.resumed && fs.existsSync(marker)) {
      const prev = JSON.parse(fs.readFileSync(marker, 'utf8')) as { fingerprint: string };
      if (prev.fingerprint !== this.fingerprint) {
        throw new OutputError(out, 'holds a pipeline run with different settings; pass --force to replace it, or use another folder');
      }
      if (fs.existsSync(path.join(out, 'report', 'stage.json'))) {
        throw new OutputError(out, `already holds a complete run with these settings (see ${path.join(out, 'report.html')}); pass --force to run it again`);
      }
    }
  }

  /** Record what the run wrote and release the folder's lock. */
  close(): void {
    this.folder?.close();
  }

  dir(stage: Stage): string {
    const d = path.join(this.out, stage);
    fs.mkdirSync(d, { recursive: true });
    return d;
  }

  /** The finished stage's result, or null (then the stage is announced as starting). */
  reuse<T>(stage: Stage, detail?: string): T | null {
    const f = path.join(this.out, stage, 'stage.json');
    const rec = fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, 'utf8')) as StageRecord) : null;
    if (rec && rec.fingerprint === this.fingerprint) {
      this.skipped.push(stage);
      this.note(stage, 'skip');
      return rec.result as T;
    }
    this.note(stage, 'start', detail);
    return null;
  }

  finish(stage: Stage, result: unknown): void {
    const rec: StageRecord = { stage, fingerprint: this.fingerprint, finishedAt: new Date().toISOString(), result };
    writeFileAtomic(path.join(this.out, stage, 'stage.json'), `${JSON.stringify(rec, null, 2)}\n`);
    this.note(stage, 'done');
  }
}
