import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';

// The repository is self-contained: someone who clones or installs chargegate has no
// folder beside it, so nothing may point outside it, and every relative link in the docs
// must lead to a file that exists.

const ROOT = resolve(import.meta.dirname, '..');
const tracked = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' })
  .split('\n')
  .filter((f) => f && /\.(md|ts|mjs|js|json|service|csv|yml|yaml|sh)$|(^|\/)Dockerfile$/.test(f) && f !== 'package-lock.json');

describe('self-contained docs', () => {
  it('no file points outside the repository', () => {
    // Built so this file does not match itself.
    const outside = new RegExp(['\\.\\./shared', '/wo' + 'rk/', 'shared/' + 'SPEC', 'shared/' + 'PACKAGING'].join('|'));
    const hits = tracked.filter((f) => existsSync(join(ROOT, f)) && outside.test(readFileSync(join(ROOT, f), 'utf8')));
    assert.deepEqual(hits, []);
  });

  it('every relative link in the README and docs/ leads to a file in the repository', () => {
    for (const f of tracked.filter((x) => x.endsWith('.md'))) {
      const text = readFileSync(join(ROOT, f), 'utf8');
      for (const m of text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/i.test(target)) continue;
        const path = resolve(ROOT, dirname(f), target);
        assert.ok(path.startsWith(`${ROOT}/`) && existsSync(path), `${f} links ${target}`);
      }
    }
  });

  it('the contract page exists and is linked from the README', () => {
    assert.ok(existsSync(join(ROOT, 'docs/contract.md')));
    assert.match(readFileSync(join(ROOT, 'README.md'), 'utf8'), /\(docs\/contract\.md\)/);
  });
});
