import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import ts from 'typescript';

/**
 * The rules the code's layout keeps, checked on the TypeScript AST of every module (so a
 * side-effect import, a re-export, a type-only import, a dynamic `import()` with a template string
 * and a worker's `new URL(..., import.meta.url)` all count):
 *
 * - layers: a module imports from its own layer or a lower one, never from a higher one;
 * - no two folders import each other, directly or through others;
 * - a stage's folder (`pipeline/<stage>/`) imports from another stage's folder only that stage's
 *   contract (`artifact.ts`), and only a stage before it in STAGES; its signature (`signature.ts`)
 *   may also read an earlier stage's signature (what the report reads follows what embed reads);
 * - `import()` names its module literally (only the optional TF.js packages are chosen at run time);
 * - nothing in `pipeline/` names a program (`stages/*.js`, `scripts/*.js`): the programs call the
 *   library, never the other way round.
 */
export function layersOf(stages: readonly string[]): string[][] {
  return [
    ['pipeline/errors', 'pipeline/log', 'pipeline/hash', 'pipeline/random', 'pipeline/cli', 'pipeline/files', 'pipeline/csv', 'pipeline/processes'],
    ['pipeline/arrow', 'pipeline/parquet', 'pipeline/config', 'pipeline/download', 'pipeline/tokenizer', 'pipeline/metrics', 'pipeline/mlp', 'pipeline/onnx', 'pipeline/testing'],
    ['pipeline/artifacts', 'pipeline/model'],
    ['pipeline/stage-types'],
    stages.map((s) => `pipeline/${s}`),
    ['pipeline/dag'],
    ['pipeline/runner', 'pipeline/predict', 'pipeline/sweep', 'pipeline/compare', 'pipeline/pin'],
    ['stages', 'scripts'],
  ];
}

/** Modules allowed to import a package whose name is chosen at run time (optional dependencies). */
const COMPUTED_IMPORTS = ['pipeline/mlp/backend.ts'];

export interface ImportEdge {
  file: string;
  /** The imported module, relative to the root, `.ts`; or a package name. */
  target: string;
  kind: 'static' | 'type' | 'side-effect' | 're-export' | 'dynamic' | 'url';
}

/** Every .ts file under the folders, relative to `root`. */
function sourceFiles(root: string): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(join(root, dir))) {
      const path = join(dir, name);
      if (statSync(join(root, path)).isDirectory()) walk(path);
      else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) files.push(path);
    }
  };
  for (const dir of ['pipeline', 'stages', 'scripts']) if (existsSync(join(root, dir))) walk(dir);
  return files.sort();
}

/** The imports of one module, read from its AST; computed `import()`s and program names come back as problems. */
export function importsOf(root: string, file: string): { edges: ImportEdge[]; problems: string[] } {
  const text = readFileSync(join(root, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const edges: ImportEdge[] = [];
  const problems: string[] = [];
  const add = (specifier: string, kind: ImportEdge['kind']) => {
    const target = specifier.startsWith('.') ? normalize(join(dirname(file), specifier)).replace(/\.js$/, '.ts') : specifier;
    edges.push({ file, target, kind });
  };
  const literal = (node: ts.Node | undefined): string | undefined => (node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) ? node.text : undefined);
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const specifier = literal(node.moduleSpecifier)!;
      add(specifier, !node.importClause ? 'side-effect' : node.importClause.isTypeOnly ? 'type' : 'static');
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      add(literal(node.moduleSpecifier)!, 're-export');
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const specifier = literal(node.arguments[0]);
      if (specifier !== undefined) add(specifier, 'dynamic');
      else if (!COMPUTED_IMPORTS.includes(file)) problems.push(`${file}: import() of a computed module (${node.arguments[0]?.getText(source)}): name the module literally`);
    } else if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'URL' && node.arguments?.length === 2 && isImportMetaUrl(node.arguments[1]!)) {
      const specifier = literal(node.arguments[0]);
      if (specifier?.startsWith('.')) add(specifier, 'url');
      else if (specifier === undefined && file.startsWith('pipeline/')) problems.push(`${file}: new URL() of a computed path relative to the module (${node.arguments[0]!.getText(source)})`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return { edges, problems };
}

const isImportMetaUrl = (node: ts.Node) => ts.isPropertyAccessExpression(node) && ts.isMetaProperty(node.expression) && node.name.text === 'url';

/** `pipeline/embed/bert.ts` -> `pipeline/embed`; `pipeline/runner.ts` -> `pipeline/runner`; `stages/x.ts` -> `stages`. */
export const unitOf = (file: string) => {
  const parts = file.replace(/\.ts$/, '').split('/');
  return parts[0] === 'pipeline' ? parts.slice(0, 2).join('/') : parts[0]!;
};

/** Every rule the tree at `root` breaks, one line each (empty when it keeps them all). */
export function checkLayers(root: string, stages: readonly string[]): string[] {
  const layers = layersOf(stages);
  const layerOf = (unit: string) => layers.findIndex((layer) => layer.includes(unit));
  const files = sourceFiles(root);
  const problems: string[] = [];
  const edges: ImportEdge[] = [];
  for (const file of files) {
    const found = importsOf(root, file);
    edges.push(...found.edges);
    problems.push(...found.problems);
    if (layerOf(unitOf(file)) === -1) problems.push(`${file}: belongs to no layer (add its folder to layersOf)`);
  }
  const local = edges.filter((e) => !e.target.startsWith('node:') && (e.target.startsWith('pipeline/') || e.target.startsWith('stages/') || e.target.startsWith('scripts/')));
  for (const { file, target, kind } of local) {
    if (layerOf(unitOf(target)) > layerOf(unitOf(file))) problems.push(`${file} -> ${target} (${kind}): reaches a higher layer`);
    const [from, to] = [stageOf(file, stages), stageOf(target, stages)];
    if (from && to && from !== to) {
      const base = target.split('/').pop();
      const allowed = base === 'artifact.ts' || (base === 'signature.ts' && file.endsWith('/signature.ts'));
      if (!allowed) problems.push(`${file} -> ${target} (${kind}): a stage reads another stage only through its contract (artifact.ts)`);
      else if (stages.indexOf(to) > stages.indexOf(from)) problems.push(`${file} -> ${target} (${kind}): ${to} comes after ${from}, so ${from} cannot read it`);
    }
  }
  for (const file of files.filter((f) => f.startsWith('pipeline/'))) {
    for (const match of readFileSync(join(root, file), 'utf8').matchAll(/['"`][^'"`]*\b(stages|scripts)\/[\w${}-]+\.js['"`]/g)) problems.push(`${file}: names a program (${match[0]}): only stages/ and scripts/ know where the programs are`);
  }
  problems.push(...cycles(local));
  return problems;
}

function stageOf(file: string, stages: readonly string[]): string | undefined {
  const parts = file.split('/');
  return parts[0] === 'pipeline' && parts.length > 2 && stages.includes(parts[1]!) ? parts[1] : undefined;
}

function cycles(edges: ImportEdge[]): string[] {
  const graph = new Map<string, Set<string>>();
  for (const { file, target } of edges) {
    const [from, to] = [unitOf(file), unitOf(target)];
    if (from !== to) graph.set(from, (graph.get(from) ?? new Set()).add(to));
  }
  const reaches = (from: string, to: string, seen = new Set<string>()): boolean =>
    [...(graph.get(from) ?? [])].some((next) => next === to || (!seen.has(next) && (seen.add(next), reaches(next, to, seen))));
  return [...graph].flatMap(([from, targets]) => [...targets].filter((to) => reaches(to, from)).map((to) => `${from} <-> ${to}: the folders import each other`));
}
