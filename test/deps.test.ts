import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

// One-way dependencies (STYLE): bin -> src -> (queue | http | dispatch) -> core.
// Code that runs inside worker threads reaches only the leaf modules.

const ROOT = resolve(import.meta.dirname, '..');

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

function localImports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: string[] = [];
  // Static imports and lazy ones (`await import('./x.ts')`, which the bundle keeps inline).
  for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
    out.push(relative(ROOT, resolve(ROOT, dirname(file), (m[1] ?? m[2])!)));
  }
  return out;
}

const RULES: Array<{ from: string; allow: string[] }> = [
  { from: 'src/core/', allow: ['src/core/'] },
  { from: 'workers/', allow: ['src/core/', 'workers/'] },
  { from: 'src/queue/', allow: ['src/core/', 'src/queue/'] },
  { from: 'src/dispatch/', allow: ['src/core/', 'src/queue/', 'src/dispatch/', 'src/config.ts'] },
  { from: 'src/http/', allow: ['src/core/', 'src/http/', 'src/queue/intake.ts'] },
  { from: 'src/observe/', allow: ['src/core/', 'src/observe/', 'src/queue/'] },
  { from: 'src/runtime/', allow: ['src/', 'package.json'] },
  { from: 'src/config.ts', allow: ['src/core/'] },
];

describe('module dependencies', () => {
  const all = [...files('src'), ...files('workers'), ...files('bin')];

  for (const rule of RULES) {
    it(`${rule.from} imports only ${rule.allow.join(', ')}`, () => {
      for (const f of all.filter((x) => x.startsWith(rule.from))) {
        for (const imp of localImports(f)) {
          assert.ok(rule.allow.some((a) => imp.startsWith(a)), `${f} imports ${imp}`);
        }
      }
    });
  }

  it('nothing in src/ or workers/ imports bin/ or test/', () => {
    for (const f of all.filter((x) => !x.startsWith('bin/'))) {
      for (const imp of localImports(f)) assert.ok(!imp.startsWith('bin/') && !imp.startsWith('test/'), `${f} imports ${imp}`);
    }
  });

  it('src/ holds folders that say what they are, and only the composition root and the config beside them', () => {
    const loose = readdirSync(join(ROOT, 'src'), { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name).sort();
    assert.deepEqual(loose, ['app.ts', 'config.ts']);
  });

  it('the checker sees imports (guards against a rule that can never fail)', () => {
    assert.ok(localImports('workers/deliver.ts').includes('src/core/retry.ts'));
  });
});
