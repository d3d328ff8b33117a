#!/usr/bin/env node
/**
 * Builds the native backend, build/echoatt.node, by calling the C++ compiler directly (no node-gyp, no downloads).
 * Runs as the package's `install` script, so it must never fail the install: if there is no compiler or the
 * build breaks, it prints one warning and exits 0, and echoatt falls back to its reference backend.
 *
 *   node scripts/build-native.mjs           build unless build/echoatt.node is newer than every source
 *   node scripts/build-native.mjs --force   always rebuild
 *
 * Files named *_avx2.cc get -mavx2 -mfma -mf16c, *_avx512.cc additionally -mavx512f -mavx512vl -mavx512bw; everything
 * else is compiled for the baseline target (the addon picks a kernel set at load time only if the CPU has it). Env: CXX (default g++), ECHOATT_CXXFLAGS (extra).
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
  const isaFlags = (f) =>
    f.endsWith('_avx512.cc')
      ? ['-mavx512f', '-mavx512vl', '-mavx512bw', '-mavx2', '-mfma', '-mf16c']
      : f.endsWith('_avx2.cc')
        ? ['-mavx2', '-mfma', '-mf16c']
        : [];

  // The x86 kernel sets only on x86; elsewhere dispatch.cc compiles to the portable table alone.
  const x86 = process.arch === 'x64' || process.arch === 'ia32';
  const wanted = sources.filter((f) => x86 || !/_avx(2|512)\.cc$/.test(f));
  const objOf = (f) => path.join(objDir, f.replace(/\.cc$/, '.o'));

  /** Compiles `files` in parallel, one job per core; returns the failures as `file: first error line`. */
  async function compile(files, extra = []) {
    const width = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
    const failures = [];
    let next = 0;
    async function worker() {
      while (next < files.length) {
        const f = files[next++];
        const r = await run(cxx, [...common, ...extra, ...isaFlags(f), '-c', path.join(srcDir, f), '-o', objOf(f)]);
        if (r.code !== 0) failures.push(`${f}: ${firstError(r.out)}`);
      }
    }
    await Promise.all(Array.from({ length: Math.min(width, files.length) }, worker));
    return failures;
  }

  let objects = wanted;
  const failures = await compile(wanted);
  if (failures.length > 0 && failures.every((f) => /^\S+_avx512\.cc:/.test(f))) {
    // A toolchain too old for AVX-512 (or with it disabled) still gets the AVX2 and portable kernels.
    process.stderr.write(`echoatt: building without the AVX-512 kernels (${failures[0]}).\n`);
    objects = wanted.filter((f) => !f.endsWith('_avx512.cc'));
    const retry = await compile(['dispatch.cc'], ['-DECHOATT_NO_AVX512']);
    if (retry.length > 0) warn(`compiling ${retry[0]}`);
  } else if (failures.length > 0) {
    warn(`compiling ${failures[0]}`);
  }

  // Link to a temporary name and rename, so a concurrent loader never sees a half-written addon.
  const tmp = `${output}.${process.pid}.tmp`;
  const linkFlags = ['-shared', '-fPIC', '-pthread', ...(process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : [])];
  const link = await run(cxx, [...linkFlags, '-o', tmp, ...objects.map(objOf)]);
  if (link.code !== 0) {
    fs.rmSync(tmp, { force: true });
    warn(`linking: ${firstError(link.out)}`);
  }
  fs.renameSync(tmp, output);
}

main().catch((err) => warn(String(err?.message ?? err)));
