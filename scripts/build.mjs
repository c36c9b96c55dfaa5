// Builds every app with the TypeScript compiler (keeps decorator metadata, needs no
// bundler) and Nest's OpenAPI plugin, which reads the DTOs' types and class-validator
// rules into the document served at GET /docs. The apps, the tsconfig and the plugin's
// options come from nest-cli.json, as the Nest CLI's tsc builder would read them. Then
// rewrites the @tagflow/* path aliases to relative imports and writes
// dist/apps/<app>/main.js so each app starts as `node dist/apps/<app>/main.js`. Last, the web
// UI (apps/ui, a browser app) is bundled by Vite into dist/ui, which the API serves at /ui.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { build as buildUi } from 'vite';
import { before as openApiPlugin } from '@nestjs/swagger/plugin';

const nest = JSON.parse(readFileSync('nest-cli.json', 'utf8'));
const CONFIG = nest.compilerOptions.tsConfigPath;
const swagger = nest.compilerOptions.plugins.find((p) => p.name === '@nestjs/swagger');
const apps = Object.entries(nest.projects).filter(([, p]) => p.type === 'application');
// --lenient: type errors are shown but do not stop the build. For `npm run openapi` only: the
// client's types are generated from the document the built API writes, and a changed schema
// can leave the API's mappers disagreeing with the old generated types until they are written.
const lenient = process.argv.includes('--lenient');

rmSync('dist', { recursive: true, force: true });
compile(CONFIG);
execFileSync(process.execPath, ['node_modules/tsc-alias/dist/bin/index.js', '-p', CONFIG], { stdio: 'inherit' });
dropUnusedOpenApiImports('dist');
for (const [name, project] of apps) {
  mkdirSync(`dist/apps/${name}`, { recursive: true });
  writeFileSync(`dist/apps/${name}/main.js`, `import './src/${project.entryFile}.js';\n`);
}
await buildUi({ configFile: 'apps/ui/vite.config.mjs' });

/** What `tsc -p` does, plus the plugin's transformer; exits 1 on any diagnostic. */
function compile(configPath) {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    configPath,
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: fail },
  );
  const program = ts.createProgram({
    rootNames: parsed.fileNames,
    options: parsed.options,
    projectReferences: parsed.projectReferences,
  });
  const plugin = openApiPlugin(swagger.options, program);
  const emitted = program.emit(undefined, undefined, undefined, false, { before: [plugin] });
  const diagnostics = [...parsed.errors, ...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics];
  if (diagnostics.length > 0 && lenient) report(...diagnostics);
  else if (diagnostics.length > 0) fail(...diagnostics);
}

function fail(...diagnostics) {
  report(...diagnostics);
  process.exit(1);
}

function report(...diagnostics) {
  const host = {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: ts.sys.getCurrentDirectory,
    getNewLine: () => ts.sys.newLine,
  };
  process.stderr.write(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
}

/**
 * The OpenAPI plugin adds `import * as openapi from "@nestjs/swagger"` to every file with a
 * DTO, used or not. The shared DTOs (libs/spec) never use it, yet the import loaded all of
 * @nestjs/swagger (0.7 s) into the CLI and the worker, which validate with those DTOs but
 * serve no document. Drops the import wherever `openapi.` appears nowhere else in the file.
 */
function dropUnusedOpenApiImports(dir) {
  const line = 'import * as openapi from "@nestjs/swagger";\n';
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.js')) continue;
    const file = join(entry.parentPath, entry.name);
    const text = readFileSync(file, 'utf8');
    if (!text.includes(line)) continue;
    const rest = text.replace(line, '');
    if (!rest.includes('openapi.')) writeFileSync(file, rest);
  }
}
