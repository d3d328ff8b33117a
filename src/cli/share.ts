/** `echoatt share`: build a shared-attention student from a model and a plan, save it, and say what it removed. */
import fs from 'node:fs';
import type { Command } from 'commander';
import { loadModel, saveModel } from '../models/load.js';
import { parsePlan } from '../models/sharing-plan.js';
import { buildStudent } from '../sharing/student.js';
import { formatSharingCost, sharingCost } from '../sharing/cost.js';
import { DEFAULT_MODEL } from './defaults.js';
import { intOption } from './options.js';
import { PlanError } from '../errors.js';
import { OutputFolder } from '../io/output.js';

export function registerShare(program: Command): void {
  program
    .command('share')
    .description('build a shared-attention student (EchoAtt / Shared Attention) from a model and a plan')
    .option('-m, --model <path>', 'teacher: llama2.c .bin or Hugging Face directory', DEFAULT_MODEL)
    .requiredOption('--plan <file>', 'plan.json ({"groups":[{"anchor":A,"shared":[...]}]}, e.g. from `echoatt analyze`)')
    .requiredOption('-o, --out <dir>', 'output directory (Hugging Face layout)')
    .option('--tokenizer <path>', 'tokenizer to save with the student (default: the teacher\'s)')
    .option('--seq-len <T>', 'context length at which attention FLOPs are counted', intOption('--seq-len', 1), 2048)
    .option('--json', 'print the savings as JSON on stdout')
    .option('--force', 'replace an earlier share output in --out (only the files it wrote)')
    .action((f: { model: string; plan: string; out: string; tokenizer?: string; seqLen: number; json?: boolean; force?: boolean }) => {
      const out = OutputFolder.open(f.out, { command: 'share', force: f.force, inputs: [f.model, f.plan, f.tokenizer] });
      let json: unknown;
      try {
        json = JSON.parse(fs.readFileSync(f.plan, 'utf8'));
      } catch (e) {
        throw new PlanError(f.plan, `cannot read plan JSON (${(e as Error).message})`);
      }
      const plan = parsePlan(json, f.plan);
      if (plan.groups.every((g) => g.shared.length === 0)) throw new PlanError(f.plan, 'shares no layer (every group\'s "shared" is empty); nothing to build');
      const { model, checkpoint } = loadModel(f.model);
      const student = buildStudent(model, plan);
      saveModel(out.dir, student, f.tokenizer ?? checkpoint.tokenizerPath);
      out.close();
      const cost = sharingCost(model.config, plan, f.seqLen);
      if (f.json) process.stdout.write(`${JSON.stringify(cost, null, 2)}\n`);
      else process.stdout.write(`wrote student to ${f.out}\n${formatSharingCost(cost)}\n`);
    });
}
