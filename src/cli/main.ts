import { Command, CommanderError } from 'commander';
import type { LoadOptions } from '../config/load.js';
import { registerFileCommands } from './files.js';
import { EXIT } from './exit.js';
import { VERSION } from '../version.js';

// The server and the config tools load on demand: the file commands never import a server module.

interface ServerFlags {
  config?: string;
  listenAddr?: string;
  dataDir?: string;
  workers?: string;
  logLevel?: string;
  logFormat?: string;
}

/** Flags are the last config layer; only the ones given override. */
function flagTree(f: ServerFlags): NonNullable<LoadOptions['flags']> {
  const server: Record<string, unknown> = {};
  const log: Record<string, unknown> = {};
  const backend: Record<string, unknown> = {};
  if (f.listenAddr !== undefined) server.listen_addr = f.listenAddr;
  if (f.workers !== undefined) server.workers = f.workers;
  if (f.logLevel !== undefined) log.level = f.logLevel;
  if (f.logFormat !== undefined) log.format = f.logFormat;
  if (f.dataDir !== undefined) backend.localfs_root_path = f.dataDir;
  return { server, log, backend };
}

async function reportConfigError(err: unknown): Promise<never> {
  const { ConfigError } = await import('../config/load.js');
  if (err instanceof ConfigError) {
    for (const key of err.warnings) process.stderr.write(`warning: unknown key ignored: ${key}\n`);
    process.stderr.write(`callfs: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

const program = new Command('callfs')
  .description('CallFS: a clustered REST file server, and its file commands')
  .version(VERSION)
  // Usage mistakes exit 2 (help and --version 0), as the README's exit code table says.
  .exitOverride((err: CommanderError) => {
    process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
  });

program
  .command('server')
  .description('run the server (no config: quickstart on :8443 with ./data and SQLite)')
  .option('-c, --config <file>', 'YAML or JSON config file')
  .option('--listen-addr <addr>', 'listen address, e.g. :8443 or 127.0.0.1:8443')
  .option('--data-dir <dir>', 'localfs root (backend.localfs_root_path)')
  .option('--workers <n>', 'worker processes (server.workers)')
  .option('--log-level <level>', 'trace|debug|info|warn|error')
  .option('--log-format <format>', 'json|console')
  .action(async (flags: ServerFlags) => {
    const { loadConfig } = await import('../config/load.js');
    let loaded;
    try {
      loaded = loadConfig({ file: flags.config, flags: flagTree(flags) });
    } catch (err) {
      return reportConfigError(err);
    }
    const { runServer } = await import('../runtime/run.js');
    await runServer(loaded);
  });

const config = program.command('config').description('configuration tools');
config
  .command('validate')
  .description('check a config file: exit 0, or print every problem and exit non-zero')
  .requiredOption('-c, --config <file>', 'YAML or JSON config file')
  .action(async (flags: { config: string }) => {
    const { loadConfig } = await import('../config/load.js');
    try {
      const loaded = loadConfig({ file: flags.config });
      for (const key of loaded.unknownKeys)
        process.stderr.write(`warning: unknown key ignored: ${key}\n`);
      process.stdout.write(`${flags.config}: ok\n`);
    } catch (err) {
      await reportConfigError(err);
    }
  });

registerFileCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`callfs: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
