import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, type Node } from 'acorn';
import { sha256 } from '../hash.js';

/**
 * The code a stage runs, as a dependency of its key (as DVC treats a stage's code): the
 * top-level declarations its build function reaches, across modules, through static imports,
 * dynamic imports and worker URLs, each hashed as its tokens, plus the installed version of
 * every package they use.
 *
 * Tokens, not text: a comment, a blank line or a re-indented block is not code, so it changes
 * no key. Declarations, not modules: train calls two functions of `metrics/index.js`, and a real
 * change to a third one (the calibration error, say) reruns evaluate, which calls it, and not
 * train. A module's top-level statements that are not declarations run when it is imported, so
 * they count wherever the module is reached. Modules that cannot change what a stage writes
 * (logging, errors, argument parsing, the store's own plumbing) are left out, so that fixing a
 * progress line does not re-embed a corpus.
 *
 * Hand-written on acorn's parser because no package does this: bundlers tree-shake but do not
 * say what they kept, and hashing whole files is what made a comment retrain every classifier.
 */
export interface CodeFingerprint {
  /** One hash over everything below: what goes into the key. */
  hash: string;
  /** Module (relative to dist/) -> one hash of the declarations of it that the stage reaches. */
  modules: Record<string, string>;
  /** Package -> installed version. */
  packages: Record<string, string>;
}

/** `module.js` (all of it) or `module.js#export` (that export and what it reaches), relative to dist/. */
export type CodeEntry = string;

const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const INFRASTRUCTURE = [/^pipeline\/(log|errors|cli|runner|dag)\.js$/, /^pipeline\/artifacts\//];
const isInfrastructure = (module: string) => INFRASTRUCTURE.some((re) => re.test(module));

/** One top-level statement of a module. */
interface Statement {
  /** sha256 of its tokens: comments, whitespace and trailing commas are not tokens. */
  hash: string;
  /** Top-level bindings it declares. */
  declares: string[];
  /** Identifiers it mentions (a superset of the bindings it uses). */
  mentions: Set<string>;
  /** Modules it imports whole at run time: `import('./x.js')`, `new URL('./x.js', import.meta.url)`. */
  loads: string[];
  /** True for a statement that runs when the module is imported (anything but a declaration). */
  runs: boolean;
}

interface ModuleSummary {
  statements: Statement[];
  /** Local binding -> where it is imported from (`*` for a namespace). */
  imports: Map<string, { from: string; name: string }>;
  /** Exported name -> local binding. */
  exports: Map<string, string>;
  /** Exported name -> re-export from another module. */
  reexports: Map<string, { from: string; name: string }>;
  /** `export * from`. */
  starFrom: string[];
  /** Modules imported for their side effects only (`import './x.js'`). */
  imported: string[];
  /** Top-level binding -> the statements that declare it. */
  declaredBy: Map<string, number[]>;
}

const summaries = new Map<string, ModuleSummary | null>();
const fingerprints = new Map<string, CodeFingerprint>();

/** The fingerprint of the code reachable from `entries`. */
export function codeFingerprint(entries: readonly CodeEntry[]): CodeFingerprint {
  const id = [...entries].sort().join('\n');
  const hit = fingerprints.get(id);
  if (hit) return hit;
  const reached = new Map<string, Set<number>>();
  const packages: Record<string, string> = {};
  const pending: { module: string; name: string }[] = entries.map((entry) => {
    const [module, name] = entry.split('#');
    return { module: normalize(module!), name: name ?? '*' };
  });
  const seen = new Set<string>();
  const include = (module: string, index: number) => {
    const statements = reached.get(module)!;
    if (statements.has(index)) return;
    statements.add(index);
    const summary = summaryOf(module)!;
    const statement = summary.statements[index]!;
    for (const target of statement.loads) use(target, '*');
    for (const mention of statement.mentions) {
      const imported = summary.imports.get(mention);
      if (imported) use(imported.from, imported.name);
      else for (const i of summary.declaredBy.get(mention) ?? []) include(module, i);
    }
  };
  const use = (from: string, name: string) => {
    if (from.startsWith('node:')) return;
    if (from.startsWith('package:')) {
      const pkg = from.slice('package:'.length);
      packages[pkg] ??= installedVersion(pkg);
    } else {
      pending.push({ module: from, name });
    }
  };
  while (pending.length) {
    const { module, name } = pending.pop()!;
    if (isInfrastructure(module) || seen.has(`${module}#${name}`)) continue;
    seen.add(`${module}#${name}`);
    const summary = summaryOf(module);
    if (!summary) throw new Error(`code fingerprint: ${join(DIST, module)} not found (is dist/ built?)`);
    if (!reached.has(module)) {
      // First time the module is reached: what runs on import counts, and what it imports for that.
      reached.set(module, new Set());
      for (const target of summary.imported) use(target, '');
      summary.statements.forEach((s, i) => s.runs && include(module, i));
    }
    if (name === '') continue;
    if (name === '*') {
      summary.statements.forEach((_, i) => include(module, i));
      for (const target of summary.starFrom) use(target, '*');
      for (const { from, name: imported } of summary.reexports.values()) use(from, imported);
      continue;
    }
    const local = summary.exports.get(name);
    for (const i of local ? summary.declaredBy.get(local) ?? [] : []) include(module, i);
    const reexport = summary.reexports.get(name);
    if (reexport) use(reexport.from, reexport.name);
    if (!local && !reexport) for (const target of summary.starFrom) use(target, name);
  }
  const modules: Record<string, string> = {};
  for (const [module, indices] of [...reached].sort(([a], [b]) => a.localeCompare(b))) {
    if (!indices.size) continue;
    const statements = summaryOf(module)!.statements;
    modules[module] = sha256([...indices].sort((a, b) => a - b).map((i) => statements[i]!.hash).join('\n')).slice(0, 16);
  }
  const sortedPackages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => a.localeCompare(b)));
  const result = { hash: sha256(JSON.stringify({ modules, packages: sortedPackages })).slice(0, 16), modules, packages: sortedPackages };
  fingerprints.set(id, result);
  return result;
}

function summaryOf(module: string): ModuleSummary | null {
  if (summaries.has(module)) return summaries.get(module)!;
  const path = join(DIST, module);
  const summary = existsSync(path) ? summarize(readFileSync(path, 'utf8'), module) : null;
  summaries.set(module, summary);
  return summary;
}

type AnyNode = Node & Record<string, any>;

/** Parses a compiled module into its top-level statements, imports and exports. */
export function summarize(code: string, module: string): ModuleSummary {
  const tokens: { start: number; end: number }[] = [];
  const program = parse(code, { ecmaVersion: 'latest', sourceType: 'module', onToken: (t) => void tokens.push({ start: t.start, end: t.end }) }) as AnyNode;
  const resolveSpecifier = (specifier: string) => {
    if (specifier.startsWith('node:')) return specifier;
    if (!specifier.startsWith('.')) return `package:${specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]}`;
    return relative(DIST, resolve(dirname(join(DIST, module)), specifier));
  };
  const summary: ModuleSummary = { statements: [], imports: new Map(), exports: new Map(), reexports: new Map(), starFrom: [], imported: [], declaredBy: new Map() };
  let next = 0;
  for (const node of program.body as AnyNode[]) {
    const own: string[] = [];
    while (next < tokens.length && tokens[next]!.start < node.end) {
      if (tokens[next]!.start >= node.start) own.push(code.slice(tokens[next]!.start, tokens[next]!.end));
      next++;
    }
    // A trailing comma before a closing bracket is formatting, not code.
    const kept = own.filter((t, i) => !(t === ',' && [')', ']', '}'].includes(own[i + 1] ?? '')));
    const statement: Statement = { hash: sha256(kept.join('\u0000')), declares: [], mentions: new Set(), loads: [], runs: false };
    switch (node.type) {
      case 'ImportDeclaration': {
        const from = resolveSpecifier(node.source.value);
        if (!node.specifiers.length) summary.imported.push(from);
        for (const s of node.specifiers) {
          const name = s.type === 'ImportNamespaceSpecifier' ? '*' : s.type === 'ImportDefaultSpecifier' ? 'default' : (s.imported.name ?? s.imported.value);
          summary.imports.set(s.local.name, { from, name });
        }
        continue;
      }
      case 'ExportAllDeclaration':
        if (node.exported) summary.reexports.set(node.exported.name ?? node.exported.value, { from: resolveSpecifier(node.source.value), name: '*' });
        else summary.starFrom.push(resolveSpecifier(node.source.value));
        continue;
      case 'ExportNamedDeclaration':
        if (node.source) {
          for (const s of node.specifiers) summary.reexports.set(s.exported.name ?? s.exported.value, { from: resolveSpecifier(node.source.value), name: s.local.name ?? s.local.value });
          continue;
        }
        if (!node.declaration) {
          for (const s of node.specifiers) summary.exports.set(s.exported.name ?? s.exported.value, s.local.name);
          continue;
        }
        declaredNames(node.declaration).forEach((name) => summary.exports.set(name, name));
        describe(node.declaration, statement);
        break;
      case 'ExportDefaultDeclaration': {
        const named = node.declaration.id?.name as string | undefined;
        summary.exports.set('default', named ?? '*default*');
        statement.declares.push(named ?? '*default*');
        break;
      }
      default:
        describe(node, statement);
    }
    collect(node, statement, resolveSpecifier);
    for (const name of statement.declares) summary.declaredBy.set(name, [...(summary.declaredBy.get(name) ?? []), summary.statements.length]);
    summary.statements.push(statement);
  }
  return summary;
}

function describe(node: AnyNode, statement: Statement): void {
  const names = declaredNames(node);
  statement.declares.push(...names);
  // A declaration with an initializer that calls something may run code on import (`const x = f()`):
  // counted as a declaration anyway; what it calls is reached when x is.
  statement.runs = !names.length;
}

function declaredNames(node: AnyNode): string[] {
  if (node.type === 'FunctionDeclaration' || node.type === 'ClassDeclaration') return node.id ? [node.id.name] : [];
  if (node.type === 'VariableDeclaration') return node.declarations.flatMap((d: AnyNode) => patternNames(d.id));
  return [];
}

function patternNames(pattern: AnyNode): string[] {
  switch (pattern.type) {
    case 'Identifier':
      return [pattern.name];
    case 'ObjectPattern':
      return pattern.properties.flatMap((p: AnyNode) => patternNames(p.type === 'RestElement' ? p.argument : p.value));
    case 'ArrayPattern':
      return pattern.elements.filter(Boolean).flatMap(patternNames);
    case 'RestElement':
      return patternNames(pattern.argument);
    case 'AssignmentPattern':
      return patternNames(pattern.left);
    default:
      return [];
  }
}

/** Identifiers a statement mentions and the modules it loads at run time. Property names are not mentions. */
function collect(root: AnyNode, statement: Statement, resolveSpecifier: (s: string) => string): void {
  const visit = (node: AnyNode | null | undefined, skipName = false): void => {
    if (!node || typeof node.type !== 'string') return;
    if (node.type === 'Identifier') {
      if (!skipName) statement.mentions.add(node.name);
      return;
    }
    if (node.type === 'ImportExpression') {
      // A computed specifier (the optional tfjs-node package a backend tries) cannot be followed;
      // test/layers.test.ts refuses one that would load a module of the project.
      const target = staticString(node.source);
      if (target !== undefined) statement.loads.push(resolveSpecifier(target));
    }
    if (node.type === 'NewExpression' && node.callee.type === 'Identifier' && node.callee.name === 'URL' && node.arguments[1]?.type === 'MemberExpression' && node.arguments[1].object.type === 'MetaProperty') {
      const target = staticString(node.arguments[0]);
      if (target?.endsWith('.js')) statement.loads.push(resolveSpecifier(target));
    }
    for (const [key, value] of Object.entries(node)) {
      if (key === 'type' || key === 'start' || key === 'end') continue;
      const skip =
        (key === 'property' && node.type === 'MemberExpression' && !node.computed) ||
        (key === 'key' && ['Property', 'MethodDefinition', 'PropertyDefinition'].includes(node.type) && !node.computed) ||
        (key === 'label' && ['LabeledStatement', 'BreakStatement', 'ContinueStatement'].includes(node.type));
      if (Array.isArray(value)) value.forEach((child) => visit(child, skip));
      else if (value && typeof value === 'object') visit(value as AnyNode, skip);
    }
  };
  visit(root);
}

/** The value of a string literal, or of a template literal without substitutions. */
function staticString(node: AnyNode | undefined): string | undefined {
  if (!node) return undefined;
  if (node.type === 'Literal' && typeof node.value === 'string') return node.value;
  if (node.type === 'TemplateLiteral' && node.expressions.length === 0) return node.quasis[0].value.cooked;
  return undefined;
}

function installedVersion(name: string): string {
  // dist/ sits beside node_modules/ in the repository (and in a copy of it).
  for (let dir = DIST; ; dir = dirname(dir)) {
    const manifest = join(dir, 'node_modules', name, 'package.json');
    if (existsSync(manifest)) return (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version ?? 'unknown';
    if (dirname(dir) === dir) return 'not installed';
  }
}
