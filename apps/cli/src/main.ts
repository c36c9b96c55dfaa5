import { Command, CommanderError, Option } from 'commander';
import { TAGFLOW_VERSION, TagflowApiError, TagflowNetworkError } from '@tagflow/client';
import { addApplyCommand } from './commands/apply.command.js';
import { addChangeCommands } from './commands/change.command.js';
import { addDescribeCommands } from './commands/describe.command.js';
import { addGetCommands } from './commands/get.command.js';
import { globalOptions } from './commands/global-options.js';
import { addKeysCommands } from './commands/keys.command.js';
import { addLogsCommand } from './commands/logs.command.js';
import { addRunCommand } from './commands/run.command.js';
import { UsageError } from './config.js';
import { WorkflowFileError } from './workflow-file.js';

const program = new Command('tagflow')
  .description('Tagflow from a terminal: apply workflow files, see what runs, follow output.')
  .version(TAGFLOW_VERSION)
  .option('--url <url>', 'the API (TAGFLOW_URL, config file; default http://127.0.0.1:8080)')
  .option('--namespace <ns>', 'act in this namespace (an all-namespaces admin key only; TAGFLOW_NAMESPACE)')
  .option(
    '--config <file>',
    'config file: url, token or token_file, namespace (TAGFLOW_CONFIG; default ~/.config/tagflow/config.yaml)',
  )
  .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json', 'yaml']).default('table'))
  .addHelpText(
    'after',
    '\nThe key is read from TAGFLOW_TOKEN or the config file (never from the command line, where other users could see it).',
  )
  .showHelpAfterError();

const globals = globalOptions(program);
addApplyCommand(program, globals);
addGetCommands(program, globals);
addDescribeCommands(program, globals);
addLogsCommand(program, globals);
addChangeCommands(program, globals);
addRunCommand(program, globals);
addKeysCommands(program, globals);

// Commander's own errors (a missing or unknown flag, a bad choice) are usage errors: exit 2.
program.exitOverride();
for (const sub of program.commands) sub.exitOverride();

program.parseAsync(process.argv).catch((e: unknown) => {
  if (e instanceof CommanderError) {
    process.exitCode =
      e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help' ? 0 : 2;
  } else if (e instanceof WorkflowFileError) {
    process.stderr.write(`${e.message}\n`);
    process.exitCode = 2;
  } else if (e instanceof UsageError) {
    process.stderr.write(`tagflow: ${e.message}\n`);
    process.exitCode = 2;
  } else if (e instanceof TagflowApiError || e instanceof TagflowNetworkError) {
    process.stderr.write(`tagflow: ${e.message}${e instanceof TagflowApiError ? ` (HTTP ${e.status})` : ''}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`tagflow: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
});
