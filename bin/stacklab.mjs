#!/usr/bin/env node
// Runs the CLI: from the TypeScript sources through tsx in a checkout (never a stale
// build), or from the bundled build where the sources are not shipped (packaged app).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'electron', 'cli', 'main.ts');
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(source).href);
} else {
  await import(pathToFileURL(join(root, 'out', 'cli', 'main.mjs')).href);
}
