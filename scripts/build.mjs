// Builds every app with the TypeScript compiler (keeps decorator metadata, needs no
// bundler) and Nest's OpenAPI plugin, which reads the DTOs' types and class-validator
// rules into the document served at GET /docs. Then rewrites the @tagflow/* path
// aliases to relative imports and writes dist/apps/<app>/main.js so each app starts as
// `node dist/apps/<app>/main.js`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import ts from 'typescript';
import { before as openApiPlugin } from '@nestjs/swagger/plugin';

const CONFIG = 'tsconfig.build.json';

rmSync('dist', { recursive: true, force: true });
compile(CONFIG);
execFileSync(process.execPath, ['node_modules/tsc-alias/dist/bin/index.js', '-p', CONFIG], { stdio: 'inherit' });
for (const app of ['api', 'worker']) {
  mkdirSync(`dist/apps/${app}`, { recursive: true });
  writeFileSync(`dist/apps/${app}/main.js`, `import './src/main.js';\n`);
}

/** What `tsc -p` does, plus the plugin's transformer; exits 1 on any diagnostic. */
function compile(configPath) {
  const parsed = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: fail });
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options, projectReferences: parsed.projectReferences });
  const plugin = openApiPlugin({ dtoFileNameSuffix: ['.dto.ts'], esmCompatible: true, classValidatorShim: true, introspectComments: true }, program);
  const emitted = program.emit(undefined, undefined, undefined, false, { before: [plugin] });
  const diagnostics = [...parsed.errors, ...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics];
  if (diagnostics.length > 0) fail(...diagnostics);
}

function fail(...diagnostics) {
  const host = { getCanonicalFileName: (f) => f, getCurrentDirectory: ts.sys.getCurrentDirectory, getNewLine: () => ts.sys.newLine };
  process.stderr.write(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
  process.exit(1);
}
