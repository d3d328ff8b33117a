#!/usr/bin/env node
/**
 * Builds the native backend, build/echoatt.node, by calling the C++ compiler directly (no node-gyp, no downloads).
 * Runs as the package's `install` script, so it must never fail the install: if there is no compiler or the
 * build breaks, it prints one warning and exits 0, and echoatt falls back to its reference backend.
 *
 *   node scripts/build-native.mjs           build unless build/echoatt.node is newer than every source
 *   node scripts/build-native.mjs --force   always rebuild
 *
 * Files named *_avx2.cc get -mavx2 -mfma -mf16c; everything else is compiled for the baseline target (the addon
 * picks the AVX2 kernels at load time only if the CPU has them). Env: CXX (default g++), ECHOATT_CXXFLAGS (extra).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = path.join(root, 'native');
const outDir = path.join(root, 'build');
const objDir = path.join(outDir, 'obj');
const output = path.join(outDir, 'echoatt.node');
const force = process.argv.includes('--force');
const cxx = process.env.CXX || 'g++';

function warn(reason) {
  // Drop any addon left from an earlier build so that what loads matches the warning (and these sources).
  fs.rmSync(output, { force: true });
  process.stderr.write(
    `echoatt: could not build the native backend (${reason}); echoatt will use the slower reference backend.\n`,
  );
  process.exit(0);
}

function nodeApiInclude() {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('node-api-headers/package.json', { paths: [root] });
  return path.join(path.dirname(pkg), 'include');
}

function run(cmd, args) {
  return new Promise((resolve) => {
    let out = '';
    let child;
    try {
      child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      resolve({ code: -1, out: String(err) });
      return;
    }
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (err) => resolve({ code: -1, out: err.code === 'ENOENT' ? `${cmd} not found` : String(err) }));
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** First compiler diagnostic line, so the single warning says what broke without dumping the whole log. */
function firstError(log) {
  const lines = log.split('\n');
  return (lines.find((l) => /error/i.test(l)) ?? lines.find((l) => l.trim()) ?? 'unknown error').trim();
}

async function main() {
  if (process.platform === 'win32') warn('building with MSVC is not supported');
  if (!fs.existsSync(srcDir)) warn(`no sources at ${srcDir}`);
  const sources = fs.readdirSync(srcDir).filter((f) => f.endsWith('.cc')).sort();
  const inputs = fs.readdirSync(srcDir).map((f) => path.join(srcDir, f));
  inputs.push(fileURLToPath(import.meta.url));

  if (!force && fs.existsSync(output)) {
    const built = fs.statSync(output).mtimeMs;
    if (inputs.every((f) => fs.statSync(f).mtimeMs < built)) return;
  }

  let include;
  try {
    include = nodeApiInclude();
  } catch {
    warn('the node-api-headers package is not installed');
  }

  const probe = await run(cxx, ['--version']);
  if (probe.code !== 0) warn(`no C++ compiler: ${firstError(probe.out)}`);

  fs.mkdirSync(objDir, { recursive: true });
  const common = [
    '-std=c++17', '-O3', '-fPIC', '-pthread', '-fvisibility=hidden', '-Wall', '-Wextra',
    '-DNAPI_VERSION=8', `-I${include}`,
    ...(process.env.ECHOATT_CXXFLAGS ? process.env.ECHOATT_CXXFLAGS.split(/\s+/).filter(Boolean) : []),
  ];
  const isaFlags = (f) => (f.endsWith('_avx2.cc') ? ['-mavx2', '-mfma', '-mf16c'] : []);

  // Compile in parallel, one job per core.
  const jobs = sources.map((f) => ({ src: path.join(srcDir, f), obj: path.join(objDir, f.replace(/\.cc$/, '.o')), f }));
  const width = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  let next = 0;
  let failure;
  async function worker() {
    while (next < jobs.length && !failure) {
      const j = jobs[next++];
      const r = await run(cxx, [...common, ...isaFlags(j.f), '-c', j.src, '-o', j.obj]);
      if (r.code !== 0) failure ??= `${j.f}: ${firstError(r.out)}`;
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, worker));
  if (failure) warn(`compiling ${failure}`);

  // Link to a temporary name and rename, so a concurrent loader never sees a half-written addon.
  const tmp = `${output}.${process.pid}.tmp`;
  const linkFlags = ['-shared', '-fPIC', '-pthread', ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : [])];
  const link = await run(cxx, [...linkFlags, '-o', tmp, ...jobs.map((j) => j.obj)]);
  if (link.code !== 0) {
    fs.rmSync(tmp, { force: true });
    warn(`linking: ${firstError(link.out)}`);
  }
  fs.renameSync(tmp, output);
}

main().catch((err) => warn(String(err?.message ?? err)));
