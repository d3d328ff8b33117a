/**
 * Stage bookkeeping of a pipeline run: each stage writes `<out>/<stage>/stage.json` atomically when it finishes; a
 * rerun with the same settings reuses finished stages. A previous run's results are never overwritten unless forced.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../report/plot.js';
import { OptionError } from '../errors.js';

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

  constructor(
    readonly out: string, private readonly fingerprint: string,
    readonly note: (stage: string, state: 'start' | 'skip' | 'done', detail?: string) => void,
  ) {}

  /** Refuse to clobber a different or finished previous run unless forced; clear it when forced. */
  prepare(force: boolean): void {
    const { out } = this;
    const marker = path.join(out, 'pipeline.json');
    if (fs.existsSync(out) && fs.readdirSync(out).length > 0) {
      if (force) fs.rmSync(out, { recursive: true, force: true });
      else if (!fs.existsSync(marker)) {
        throw new OptionError('--out', `${out} exists and is not an echoatt pipeline run; choose another folder or pass --force to replace it`);
      } else {
        const prev = JSON.parse(fs.readFileSync(marker, 'utf8')) as { fingerprint: string };
        if (prev.fingerprint !== this.fingerprint) {
          throw new OptionError('--out', `${out} holds a run with different settings; pass --force to replace it, or use another folder`);
        }
        if (fs.existsSync(path.join(out, 'report', 'stage.json'))) {
          throw new OptionError('--out', `${out} already holds a complete run with these settings (see ${path.join(out, 'report.html')}); pass --force to run it again`);
        }
      }
    }
    fs.mkdirSync(out, { recursive: true });
    writeFileAtomic(marker, `${JSON.stringify({ format: 'echoatt-pipeline/2', fingerprint: this.fingerprint }, null, 2)}\n`);
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
