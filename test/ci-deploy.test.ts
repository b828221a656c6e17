import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { REPO } from './helpers/workspace.js';
import { makeZip } from './helpers/archives.js';

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  id?: string;
  with?: Record<string, unknown>;
  'timeout-minutes'?: number;
}
interface Job {
  if?: string;
  needs?: string | string[];
  'timeout-minutes'?: number;
  steps: Step[];
}

const workflow = YAML.parse(readFileSync(join(REPO, '.github', 'workflows', 'retrain.yml'), 'utf8')) as { on: Record<string, any>; env: Record<string, string>; jobs: Record<string, Job> };
const k8s = YAML.parseAllDocuments(readFileSync(join(REPO, 'deploy', 'k8s', 'embed-indexed-job.yaml'), 'utf8')).map((d) => d.toJS());

/** The shell lines of a script, without comments and blank lines. */
const lines = (script: string) => script.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));

/**
 * Checks each command as the project would run it: a `make` line with `make -n` (an unknown
 * target or a typo fails, nothing runs) and a `node dist/...` line against that program's
 * --help (an unknown flag fails). Variables are expanded as a run with nothing set would see them.
 */
function checkCommands(commands: string[], env: Record<string, string>): void {
  const expand = (c: string) => c.replace(/\$\{\{[^}]*\}\}/g, '0').replace(/"?\$\{?(\w+)\}?"?/g, (whole, name: string) => env[name] ?? whole);
  const expanded = commands.map(expand);
  for (const command of expanded.filter((c) => c.startsWith('make '))) {
    const words = command.split(/\s+/).slice(1).map((w) => w.replace(/^"|"$/g, ''));
    const dry = spawnSync('make', ['-n', '--no-print-directory', ...words], { cwd: REPO, encoding: 'utf8' });
    assert.equal(dry.status, 0, `${command}: ${dry.stderr}`);
  }
  for (const command of expanded.filter((c) => c.startsWith('node dist/'))) {
    const [, script, ...rest] = command.split(/\s+/);
    assert.ok(existsSync(join(REPO, script!.replace(/^dist\//, '').replace(/\.js$/, '.ts'))), `${script} exists`);
    const help = spawnSync(process.execPath, [join(REPO, script!), '--help'], { cwd: REPO, encoding: 'utf8' });
    for (const flag of rest.filter((w) => w.startsWith('--')).map((w) => w.split('=')[0]!)) assert.match(help.stdout, new RegExp(`${flag}\\b`), `${command}: ${flag} is an option of ${script}`);
  }
}

/**
 * The real config as the workflow would see it once pinned (the committed one has PIN-ME, and a
 * dry run of `make all` checks the config first): the same file with made-up checksums.
 */
function pinnedRealConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pinned-'));
  const path = join(dir, 'imdb-bert-base.yaml');
  writeFileSync(path, readFileSync(join(REPO, 'configs', 'imdb-bert-base.yaml'), 'utf8').replace(/PIN-ME/g, 'a'.repeat(64)));
  return path;
}

const steps = (job: string) => workflow.jobs[job]!.steps;
const runLines = (job: string) => steps(job).flatMap((s) => (s.run ? lines(s.run) : []));

test('every command the retrain workflow runs is a real make target or program of the project', () => {
  const commands = Object.keys(workflow.jobs).flatMap(runLines);
  // Programs run inside a command substitution, e.g. echo "RUN=$(node dist/scripts/config.js ...)".
  const substituted = commands.flatMap((c) => [...c.matchAll(/\$\((node dist\/[^)]*)\)/g)].map((m) => m[1]!));
  const env = { CONFIG: pinnedRealConfig(), SET: '', RUN: 'imdb-bert-base' };
  checkCommands([...commands, ...substituted], env);
  assert.ok(commands.filter((c) => c.startsWith('make ')).length >= 3 && [...commands, ...substituted].filter((c) => c.startsWith('node dist/')).length >= 3);
  const allowed = /^(make |node dist\/|cat |echo |mkdir |ls |test |cp |tee )/;
  for (const command of commands) assert.match(command, allowed, `unexpected command in the workflow: ${command}`);
});

test('the workflow saves its caches even when the gate fails or make all times out', () => {
  const retrain = steps('retrain');
  assert.ok(!Object.values(workflow.jobs).some((job) => job.steps.some((s) => /^actions\/cache@/.test(s.uses ?? ''))), 'actions/cache saves only on success: restore and save are separate steps');
  const saves = retrain.filter((s) => s.uses?.startsWith('actions/cache/save@'));
  assert.deepEqual(saves.map((s) => s.with!.path).sort(), ['.cache/genre-pipeline', 'artifacts', 'node_modules']);
  for (const save of saves) assert.match(save.if ?? '', /always\(\)/, `${save.name} runs after a failure`);
  const artifacts = saves.find((s) => s.with!.path === 'artifacts')!;
  assert.match(String(artifacts.with!.key), /github\.run_id/, 'each run saves an entry of its own (entries are immutable)');
  const restore = retrain.find((s) => s.uses?.startsWith('actions/cache/restore@') && s.with!.path === 'artifacts')!;
  assert.match(String(restore.with!['restore-keys']), /^artifacts-\$\{\{ env\.RUN \}\}-$/, 'the newest entry of this run is restored by prefix');
  const makeAll = retrain.find((s) => s.run?.startsWith('make all'))!;
  assert.ok(makeAll['timeout-minutes']! < workflow.jobs.retrain!['timeout-minutes']!, 'make all times out before the job does, so the saves still run');
  assert.ok(retrain.indexOf(artifacts) > retrain.indexOf(makeAll));
});

test('the workflow installs by lockfile, runs Node 22, names the run from the config, and embeds once per dispatch', () => {
  for (const [name, job] of Object.entries(workflow.jobs)) {
    const node = job.steps.find((s) => s.uses?.startsWith('actions/setup-node@'));
    assert.equal(node?.with?.['node-version'], 22, `${name} runs Node 22 LTS`);
  }
  assert.equal(workflow.env.RUN, undefined, 'RUN is not hard-coded');
  assert.ok(runLines('retrain').some((l) => /RUN=\$\(node dist\/scripts\/config\.js --config "\$CONFIG" --get run\).*GITHUB_ENV/.test(l)));
  // A dispatch with parallel_embed embeds in the slices and merges; the retrain job never embeds again.
  assert.match(workflow.jobs['embed-slice']!.if!, /workflow_dispatch.*parallel_embed/);
  assert.deepEqual([workflow.jobs.retrain!.needs].flat(), ['embed-slice']);
  const merge = steps('retrain').find((s) => s.run?.includes('--merge 4'))!;
  assert.match(merge.if!, /needs\.embed-slice\.result == 'success'/);
  assert.ok(steps('retrain').indexOf(merge) < steps('retrain').findIndex((s) => s.run?.startsWith('make all')));
  assert.deepEqual(Object.keys(workflow.jobs).filter((job) => runLines(job).some((l) => l.startsWith('make all'))), ['retrain']);
  // Twice a week: the newest cache entry is used every 3-4 days, well inside GitHub's 7-day eviction.
  const days = String(workflow.on.schedule[0].cron).split(' ')[4]!.split(',').map(Number);
  const gaps = days.map((d, i) => ((days[(i + 1) % days.length]! - d + 7) % 7) || 7);
  assert.ok(Math.max(...gaps) < 7, `largest gap ${Math.max(...gaps)} days`);
});

test('make installs by the lockfile\'s content: a checkout that touches package.json reinstalls nothing', () => {
  const dry = spawnSync('make', ['-n', '--no-print-directory', '-W', 'package.json', '-W', 'package-lock.json', 'build'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(dry.status, 0, dry.stderr);
  assert.doesNotMatch(dry.stdout, /npm ci/);
  const stamp = spawnSync('make', ['-n', '--no-print-directory', 'install', 'ORT_INSTALL=cuda12'], { cwd: REPO, encoding: 'utf8' });
  assert.match(stamp.stdout, /^sh scripts\/install\.sh cuda12 node_modules\/\.installed-[0-9a-f]{16}-cuda12$/m, 'another onnxruntime variant is another install');
});

test('the CUDA install works on npm 11: package.json allows onnxruntime-node\'s install script, make passes no --allow-scripts', () => {
  // npm 11 refuses --allow-scripts in a project ("EALLOWSCRIPTS"); the allowance lives in package.json.
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  assert.equal(pkg.allowScripts?.['onnxruntime-node'], true);
  const script = readFileSync(join(REPO, 'scripts', 'install.sh'), 'utf8');
  assert.match(script, /ONNXRUNTIME_NODE_INSTALL="\$ort" npm ci --no-audit --no-fund/);
  assert.doesNotMatch(script, /--allow-scripts/);
  // Every dependency with an install script is decided (allowed or denied), so npm lists none as unreviewed.
  const review = spawnSync('npm', ['install-scripts', 'ls'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(review.status, 0, review.stderr);
  assert.match(review.stdout, /No packages with unreviewed install scripts/);
});

test('make install ORT_INSTALL=cuda12 runs onnxruntime-node\'s own install script against a stand-in feed; a failed download leaves node_modules working', { skip: process.platform !== 'linux' || process.arch !== 'x64' ? 'the CUDA 12 provider files exist for linux/x64 only' : false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'install-'));
  for (const file of ['Makefile', 'package.json', 'package-lock.json', 'scripts/install.sh']) cpSync(join(REPO, file), join(dir, file));
  // node_modules by hard links: instant, and the install only adds files. A provider file that the
  // repository's tree already has is unlinked in the copy first, so it is never written through.
  assert.equal(spawnSync('cp', ['-al', join(REPO, 'node_modules'), join(dir, 'node_modules')]).status, 0);
  const bin = join(dir, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64');
  const providerFiles = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so', 'libonnxruntime_providers_tensorrt.so'];
  for (const file of providerFiles) rmSync(join(bin, file), { force: true });
  const stampOf = (variant: string) => readdirSync(join(dir, 'node_modules')).filter((n) => n.startsWith('.installed-') && n.endsWith(`-${variant}`));
  assert.equal(stampOf('skip').length, 1, 'the copy is installed for the default variant');

  // The stand-in answers NuGet's API as onnxruntime-node's script reads it (index, versions,
  // .nupkg) from this folder and refuses any other request: the test fetches nothing.
  const require = createRequire(import.meta.url);
  const metadata = require(join(REPO, 'node_modules', 'onnxruntime-node', 'script', 'install-metadata.js'));
  const { name, versions } = metadata.packages['nuget:linux/x64:cuda12'];
  const [pkg, version] = [String(name).toLowerCase(), String(versions[0].version).toLowerCase()];
  const feed = mkdtempSync(join(tmpdir(), 'feed-'));
  const base = 'https://api.nuget.org/v3-flatcontainer/';
  const content = (file: string) => Buffer.from(`stand-in ${file}`);
  writeFileSync(join(feed, 'nupkg'), makeZip(providerFiles.map((file) => ({ name: `runtimes/linux-x64/native/${file}`, content: content(file) }))));
  const routes = {
    [metadata.feeds.nuget.index]: { type: 'application/json', body: JSON.stringify({ resources: [{ '@type': 'PackageBaseAddress/3.0.0', '@id': base }] }) },
    [`${base}${pkg}/index.json`]: { type: 'application/json', body: JSON.stringify({ versions: [version] }) },
    [`${base}${pkg}/${version}/${pkg}.${version}.nupkg`]: { type: 'application/octet-stream', file: join(feed, 'nupkg') },
  };
  writeFileSync(join(feed, 'routes.json'), JSON.stringify(routes));
  writeFileSync(
    join(feed, 'stand-in.cjs'),
    `const https = require('https'); const fs = require('fs'); const { PassThrough } = require('stream'); const { EventEmitter } = require('events');
const routes = JSON.parse(fs.readFileSync(${JSON.stringify(join(feed, 'routes.json'))}, 'utf8'));
https.get = (...args) => {
  // (url[, options][, callback]) or (options[, callback]), as global-agent may call it.
  const callback = args.find((a) => typeof a === 'function');
  const target = args[0];
  const url = typeof target === 'string' || target instanceof URL ? String(target) : 'https://' + (target.hostname || target.host) + (target.path || '/');
  const request = new EventEmitter();
  process.nextTick(() => {
    const route = routes[url];
    if (!route) return request.emit('error', new Error('stand-in: refused ' + url + ' (tests fetch nothing)'));
    const response = new PassThrough();
    response.statusCode = process.env.STANDIN_FAIL && route.file ? 503 : 200;
    response.headers = { 'content-type': route.type };
    callback(response);
    response.end(route.file ? fs.readFileSync(route.file) : route.body);
  });
  return request;
};\n`,
  );
  const install = (variant: string, env: Record<string, string> = {}) =>
    spawnSync('make', ['--no-print-directory', 'install', `ORT_INSTALL=${variant}`], { cwd: dir, encoding: 'utf8', env: { ...process.env, ...env, NODE_OPTIONS: `--require ${join(feed, 'stand-in.cjs')}` } });

  const cuda = install('cuda12');
  assert.equal(cuda.status, 0, `${cuda.stdout}${cuda.stderr}`);
  assert.match(cuda.stdout, new RegExp(`Downloading ${base}${pkg}/${version}/`));
  assert.doesNotMatch(`${cuda.stdout}${cuda.stderr}`, /EALLOWSCRIPTS|npm ci/);
  for (const file of providerFiles) assert.deepEqual(readFileSync(join(bin, file)), content(file), `${file} installed where onnxruntime-node loads it`);
  assert.equal(stampOf('cuda12').length, 1);
  assert.equal(stampOf('skip').length, 0);

  // A download that fails: make install exits non-zero and the installed tree still works.
  assert.equal(install('skip').status, 0);
  for (const file of providerFiles) rmSync(join(bin, file));
  const failed = install('cuda12', { STANDIN_FAIL: '1' });
  assert.notEqual(failed.status, 0);
  // onnxruntime-node's script rejects the 503, or (when its file stream has not opened yet) fails unlinking it: either way it exits non-zero.
  assert.match(failed.stderr, /HTTP status code = 503|ENOENT: no such file or directory, unlink .*\.nupkg/);
  assert.equal(stampOf('skip').length, 1, 'the previous install is still the one make trusts');
  const works = spawnSync(process.execPath, ['-e', "import('onnxruntime-node').then((ort) => console.log(Object.keys(ort).includes('InferenceSession')))"], { cwd: dir, encoding: 'utf8' });
  assert.equal(works.stdout.trim(), 'true', works.stderr);
});

test('the Kubernetes Indexed Job embeds one slice per index on a shared volume, and the merge joins them', () => {
  const [claim, prefetch, slices, merge] = k8s as any[];
  assert.equal(claim.kind, 'PersistentVolumeClaim');
  assert.deepEqual(claim.spec.accessModes, ['ReadWriteMany']);
  assert.equal(slices.kind, 'Job');
  assert.equal(slices.spec.completionMode, 'Indexed');
  const n = slices.spec.completions;
  assert.equal(slices.spec.parallelism, n);
  const sliceScript = lines(slices.spec.template.spec.containers[0].args[0]);
  assert.ok(sliceScript.some((l: string) => l.includes(`--shard "$JOB_COMPLETION_INDEX/${n}"`)), 'each index embeds its own slice of n');
  const mergeScript = lines(merge.spec.template.spec.containers[0].args[0]);
  assert.ok(mergeScript.some((l: string) => l.includes(`--merge ${n}`)), 'the merge joins the same number of slices');
  assert.equal(merge.spec.suspend, true, 'the merge waits to be resumed after the slices');
  for (const job of [slices, merge]) {
    const container = job.spec.template.spec.containers[0];
    assert.equal(container.volumeMounts[0].name, job.spec.template.spec.volumes[0].name);
    assert.equal(job.spec.template.spec.volumes[0].persistentVolumeClaim.claimName, claim.metadata.name);
  }
  // One pre-fetch step downloads into the shared cache; the slices start suspended, after it.
  const prefetchScript = lines(prefetch.spec.template.spec.containers[0].args[0]);
  assert.ok(prefetchScript.some((l: string) => l.startsWith('make prefetch ')));
  assert.equal(slices.spec.suspend, true, 'the slices wait for the pre-fetch');
  for (const job of [prefetch, slices, merge]) {
    const env = Object.fromEntries(job.spec.template.spec.containers[0].env.map((e: { name: string; value: string }) => [e.name, e.value]));
    assert.equal(env.PIPELINE_CACHE, '/shared/cache', `${job.metadata.name} shares one download cache`);
    assert.equal(job.spec.template.spec.securityContext.runAsUser, 10001, 'the image\'s unprivileged user');
  }
  // A slice out of retries fails the Job at once, which the documented wait sees.
  assert.equal(slices.spec.maxFailedIndexes, 0);
  // The report leaves the volume: the merge copies it (links resolved) where copy-report.sh reads it.
  assert.ok(mergeScript.some((l: string) => /^cp -rL .*\/report"? \/shared\/out\/report$/.test(l)));
  assert.match(readFileSync(join(REPO, 'deploy', 'k8s', 'copy-report.sh'), 'utf8'), /kubectl cp "\$pod:\/shared\/out\/report"/);
  const substituted = mergeScript.flatMap((c: string) => [...c.matchAll(/\$\((node dist\/[^)]*)\)/g)].map((m) => m[1]!));
  const env = { CONFIG: pinnedRealConfig(), JOB_COMPLETION_INDEX: '0' };
  checkCommands([...prefetchScript, ...sliceScript, ...mergeScript, ...substituted], env);
  assert.ok(existsSync(join(REPO, 'scripts', 'prefetch.ts')));
});

test('the GPU manifest is the CPU one with the CUDA image and one GPU per slice, nothing else', () => {
  const gpu = YAML.parseAllDocuments(readFileSync(join(REPO, 'deploy', 'k8s', 'embed-indexed-job-gpu.yaml'), 'utf8')).map((d) => d.toJS());
  const slices = gpu[2];
  const container = slices.spec.template.spec.containers[0];
  assert.equal(container.resources.limits['nvidia.com/gpu'], 1);
  assert.ok(slices.spec.template.spec.tolerations.some((t: { key: string }) => t.key === 'nvidia.com/gpu'));
  for (const job of gpu.slice(1)) assert.match(job.spec.template.spec.containers[0].image, /:cuda$/);
  // Undo those differences: what is left must equal the CPU manifest.
  delete container.resources.limits;
  delete slices.spec.template.spec.tolerations;
  for (const job of gpu.slice(1)) job.spec.template.spec.containers[0].image = job.spec.template.spec.containers[0].image.replace(/:cuda$/, ':cpu');
  assert.deepEqual(gpu, k8s);
});

test('wait-job.sh fails fast on a failed Job, succeeds on a complete one, and gives up at its timeout', () => {
  // A stand-in for kubectl that answers from a file: the script's logic runs for real, no cluster.
  const dir = mkdtempSync(join(tmpdir(), 'kubectl-'));
  writeFileSync(join(dir, 'kubectl'), '#!/bin/sh\ncase "$*" in\n  *conditions*) cat "$KUBECTL_STATE" ;;\n  *failedIndexes*) echo 2 ;;\n  logs*) echo "embed: error: out of memory" ;;\nesac\n', { mode: 0o755 });
  const state = join(dir, 'state');
  const wait = (conditions: string, timeout: string) => {
    writeFileSync(state, conditions);
    return spawnSync('sh', [join(REPO, 'deploy', 'k8s', 'wait-job.sh'), 'genre-embed', timeout], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, KUBECTL_STATE: state, WAIT_EVERY_S: '0' } });
  };
  const failed = wait('FailureTarget Failed ', '172800');
  assert.equal(failed.status, 1);
  assert.match(failed.stderr, /job\/genre-embed: failed; failed indexes: 2/);
  assert.match(failed.stderr, /out of memory/, 'the last log lines say why');
  assert.equal(wait('Complete ', '172800').status, 0);
  const running = wait('', '0');
  assert.equal(running.status, 2);
  assert.match(running.stderr, /not finished after 0s/);
});

test('the Dockerfile: pinned multi-stage build, CPU and CUDA targets, non-root, and make in the image builds nothing', () => {
  const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
  const args = Object.fromEntries([...dockerfile.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  const froms = [...dockerfile.matchAll(/^FROM (\S+)(?: AS (\S+))?$/gm)].map((m) => ({ image: m[1]!.replace(/\$\{(\w+)\}/g, (_, n: string) => args[n] ?? _), stage: m[2] }));
  assert.deepEqual(froms.map((f) => f.stage), ['build', 'build-cuda', 'cpu', 'cuda']);
  for (const { image } of froms.filter((f) => !['build', 'build-cuda'].includes(f.image))) {
    assert.match(image, /^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$/, `${image}: a base image pinned to an exact version`);
  }
  assert.match(dockerfile, /ONNXRUNTIME_NODE_INSTALL=skip npm ci /, 'installed by the lockfile; CPU binaries ship in the package');
  assert.match(dockerfile, /ONNXRUNTIME_NODE_INSTALL=cuda12 node script\/install\.js/, 'the CUDA target adds the CUDA provider');
  const stages = dockerfile.split(/^FROM /m).slice(1);
  for (const stage of stages.filter((s) => / AS (cpu|cuda)$/m.test(s.split('\n')[0]!))) {
    const users = [...stage.matchAll(/^USER (\S+)$/gm)].map((m) => m[1]);
    assert.equal(users.at(-1), 'pipeline', 'the runtime runs as the unprivileged user');
    assert.match(stage, /useradd .*--uid 10001 pipeline/);
    assert.match(stage, /^CMD \["make", "all"\]$/m);
  }
  // Every path the image copies from the build context exists and is not excluded by .dockerignore.
  const ignored = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  const copied = [...dockerfile.matchAll(/^COPY (?!--from)(?:--chown=\S+ )?(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
  for (const path of copied) {
    assert.ok(existsSync(join(REPO, path)), `COPY ${path}: not in the repository`);
    assert.ok(!ignored.includes(path), `COPY ${path}: excluded by .dockerignore`);
  }
  // The runtime's layout (the build stage's /app: what it copies, less what it removes, and its
  // stamps), rebuilt in a folder: make all must not install or compile there.
  const runtime = mkdtempSync(join(tmpdir(), 'image-'));
  const build = stages.find((s) => / AS build$/m.test(s.split('\n')[0]!))!;
  for (const path of [...build.matchAll(/^COPY (?!--from)(?:--chown=\S+ )?(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/))) {
    spawnSync('cp', ['-a', join(REPO, path), join(runtime, path)]);
  }
  spawnSync('mkdir', ['-p', join(runtime, 'node_modules'), join(runtime, 'dist')]);
  const prepare = /^RUN npx tsc[^]*?(rm -rf test dist\/test[^]*?dist\/\.built)$/m.exec(build)![1]!.replace(/\\\n\s*&&/g, '&&');
  assert.equal(spawnSync('sh', ['-c', prepare], { cwd: runtime }).status, 0, prepare);
  for (const stage of ['cpu', 'cuda']) assert.match(stages.find((s) => new RegExp(` AS ${stage}$`, 'm').test(s.split('\n')[0]!))!, new RegExp(`^COPY --from=build${stage === 'cuda' ? '-cuda' : ''} --chown=pipeline:pipeline /app /app$`, 'm'), `the ${stage} image runs the build stage's tree`);
  const dry = spawnSync('make', ['-n', '--no-print-directory', 'all'], { cwd: runtime, encoding: 'utf8' });
  assert.equal(dry.status, 0, dry.stderr);
  assert.doesNotMatch(dry.stdout, /install\.sh|npm ci|tsc/, 'the image is installed and built');
  assert.match(dry.stdout, /dist\/scripts\/run\.js --config configs\/default\.yaml/);
});

test('every stage of STAGES has a make target, and each runs the planner for that stage', async () => {
  const { STAGES } = await import('../pipeline/dag.js');
  const makefile = readFileSync(join(REPO, 'Makefile'), 'utf8');
  const phony = /^PHONY_STAGES := (.*)$/m.exec(makefile)![1]!.trim().split(/\s+/);
  assert.deepEqual(phony, STAGES.map((s) => s.name), 'PHONY_STAGES lists the stages in registry order');
  // The DAG is STAGES's (it depends on the config: TF-IDF reads no token ids), so make does not repeat it.
  for (const stage of phony) {
    const dry = spawnSync('make', ['-n', '--no-print-directory', stage, 'CONFIG=configs/default.yaml', 'FORCE=embed train'], { cwd: REPO, encoding: 'utf8' });
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`dist/scripts/run\\.js --config configs/default\\.yaml .*--force embed --force train --target ${stage}$`, 'm'), `make ${stage} runs the planner for ${stage}`);
  }
});
