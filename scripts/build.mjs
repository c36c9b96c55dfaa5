// Builds every app with plain tsc (keeps decorator metadata, needs no bundler), rewrites
// the @tagflow/* path aliases to relative imports, and writes dist/apps/<app>/main.js so
// each app starts as `node dist/apps/<app>/main.js`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

const run = (bin, args) => execFileSync(process.execPath, [bin, ...args], { stdio: 'inherit' });

rmSync('dist', { recursive: true, force: true });
run('node_modules/typescript/bin/tsc', ['-p', 'tsconfig.build.json']);
run('node_modules/tsc-alias/dist/bin/index.js', ['-p', 'tsconfig.build.json']);
for (const app of ['api', 'worker']) {
  mkdirSync(`dist/apps/${app}`, { recursive: true });
  writeFileSync(`dist/apps/${app}/main.js`, `import './src/main.js';\n`);
}
