import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { REPO } from './helpers/workspace.js';

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
  assert.match(stamp.stdout, /npm ci/, 'another onnxruntime variant is another install');
});

test('the CUDA install works on npm 11: package.json allows onnxruntime-node\'s install script, make passes no --allow-scripts', () => {
  // npm 11 refuses --allow-scripts in a project ("EALLOWSCRIPTS"); the allowance lives in package.json.
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  assert.equal(pkg.allowScripts?.['onnxruntime-node'], true);
  const dry = spawnSync('make', ['-n', '-B', '--no-print-directory', 'install', 'ORT_INSTALL=cuda12'], { cwd: REPO, encoding: 'utf8' });
  assert.match(dry.stdout, /^ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci /m);
  assert.doesNotMatch(dry.stdout, /--allow-scripts/);
  // Every dependency with an install script is decided (allowed or denied), so npm lists none as unreviewed.
  const review = spawnSync('npm', ['install-scripts', 'ls'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(review.status, 0, review.stderr);
  assert.match(review.stdout, /No packages with unreviewed install scripts/);
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
  // The runtime's layout (what the cpu stage copies, and its stamps): make all must not install or compile.
  const runtime = mkdtempSync(join(tmpdir(), 'image-'));
  const cpu = stages.find((s) => / AS cpu$/m.test(s.split('\n')[0]!))!;
  for (const path of [...cpu.matchAll(/^COPY (?!--from)(?:--chown=\S+ )?(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/))) {
    spawnSync('cp', ['-a', join(REPO, path), join(runtime, path)]);
  }
  spawnSync('mkdir', ['-p', join(runtime, 'node_modules'), join(runtime, 'dist')]);
  const stamp = /^RUN (touch "node_modules\/\.installed-.*dist\/\.built) &&/m.exec(cpu)![1]!;
  assert.equal(spawnSync('sh', ['-c', stamp], { cwd: runtime }).status, 0);
  const dry = spawnSync('make', ['-n', '--no-print-directory', 'all'], { cwd: runtime, encoding: 'utf8' });
  assert.equal(dry.status, 0, dry.stderr);
  assert.doesNotMatch(dry.stdout, /npm ci|tsc/, 'the image is installed and built');
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
