import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config';
import { ensureDatabase, migrate } from '../db';
import { createLogger } from '../api/logger';
import { withServices } from './services';
import { createAdmin } from './create-admin';
import { AUDIT_USAGE, auditCommand } from './audit';
import { KEYS_USAGE, keysCommand } from './keys';
import { RELEASE_USAGE, releaseCommand } from './release';
import { BACKUP_USAGE, backupCommand, restoreCommand } from './backup';
import { RECONCILE_USAGE, reconcileCommand } from './reconcile';
import { LICENSE_USAGE, licenseCommand } from './license';
import { startApi } from '../api/server';
import { runWorkerProcess } from '../worker';

/** `agentina <command>`: operator CLI. Exit codes: 0 ok, 1 failed, 2 usage. */
const USAGE = `Usage: agentina <command> [options]

Commands:
  migrate                          apply pending database migrations
  serve                            run the API (and admin UI)
  worker                           run the Temporal worker
  create-admin --email E [--password-stdin]
                                   create an admin; prints a one-time password
                                   (or reads one line of stdin as the password)
  keys generate [--purpose audit|license|release]
                                   make a signing key (0600) in AGENTINA_KEYS_DIR
  keys ensure                      make keys only for purposes that have none
  audit verify [--from N] [--file F] [--keys K] [--checkpoints F] [--json]
                                   re-walk the audit chain and check its signed checkpoints
  audit export [--since SEQ|TIME] [--out F]
                                   write the chain as JSON lines for verification elsewhere
  release init|publish DIR|yank VERSION|export DIR|refresh|keys
                                   the signed release repository (TUF); see docs/releases.md
  backup --out F --passphrase-file P|-
                                   write an encrypted archive: database, held checkpoints, keys
  restore F --passphrase-file P|- [--force]
                                   restore an archive into an empty database and keys directory
  reconcile [--dry-run]            compare every license and agent row with its workflow; repair
  license activate-offline --request F --token act_…|- --out F
                                   answer an air-gapped agent's activation request (signed, bound)
  license status-file --agent ID --valid-for 30d --out F
                                   a signed status file that extends an air-gapped agent's grace
  help, --help, -h                 show this text (\`agentina <command> --help\`: that command's)

Configuration comes from the environment (DATABASE_URL, PORT, TEMPORAL_ADDRESS, …): see
docs/deployment.md. For a local development stack run \`npm start\` instead.
`;

const HELP_FLAGS = new Set(['help', '--help', '-h']);

/** Per-command help for commands whose own usage text lives elsewhere. */
const COMMAND_USAGE: Record<string, () => string> = {
  keys: () => KEYS_USAGE,
  audit: () => AUDIT_USAGE,
  release: () => RELEASE_USAGE,
  backup: () => BACKUP_USAGE,
  restore: () => BACKUP_USAGE,
  reconcile: () => RECONCILE_USAGE,
  license: () => LICENSE_USAGE,
  'create-admin': () =>
    'Usage: agentina create-admin --email E [--password-stdin]\n  Creates an admin and prints a one-time password (or reads one line of stdin as the password).\n',
};

type Command = (args: string[]) => Promise<number>;

function readStdinLine(): string {
  const text = readFileSync(0, 'utf8');
  const line = text.split(/\r?\n/)[0] ?? '';
  return line;
}

const commands: Record<string, Command> = {
  async migrate() {
    const config = loadConfig();
    await ensureDatabase(config.databaseUrl);
    const result = await migrate(config.databaseUrl, {
      log: (l) => console.log(l),
      ...(config.appDbPassword ? { appPassword: config.appDbPassword } : {}),
    });
    console.log(
      result.applied.length
        ? `migrated to version ${result.current}`
        : `database is up to date (version ${result.current})`,
    );
    return 0;
  },
  async serve() {
    const config = loadConfig();
    const api = await startApi(config);
    const stop = () => {
      api.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    return new Promise<number>(() => undefined);
  },
  async worker() {
    const config = loadConfig();
    await runWorkerProcess(config, createLogger(config.logLevel));
    return 0;
  },
  async 'create-admin'(args) {
    const { values } = parseArgs({
      args,
      options: { email: { type: 'string' }, 'password-stdin': { type: 'boolean' } },
      strict: true,
    });
    if (!values.email) {
      console.error('create-admin needs --email');
      return 2;
    }
    const email = values.email;
    const password = values['password-stdin'] ? readStdinLine() : undefined;
    return withServices(loadConfig(), async (services) => {
      const admin = await createAdmin(
        services.identity.accounts,
        password === undefined ? { email } : { email, password },
      );
      console.log(`created admin ${admin.email} (${admin.id})`);
      if (admin.oneTimePassword)
        console.log(`one-time password: ${admin.oneTimePassword}\n(shown once; change it at first login)`);
      return 0;
    });
  },
  keys: (args) => keysCommand(args),
  release: (args) => releaseCommand(args),
  audit: (args) => auditCommand(args),
  backup: (args) => backupCommand(args),
  restore: (args) => restoreCommand(args),
  reconcile: (args) => reconcileCommand(args),
  license: (args) => licenseCommand(args),
  async help() {
    process.stdout.write(USAGE);
    return 0;
  },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || HELP_FLAGS.has(name)) {
    process.stdout.write(USAGE);
    return 0;
  }
  const command = commands[name];
  if (command && rest.some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(COMMAND_USAGE[name]?.() ?? USAGE);
    return 0;
  }
  if (!command) {
    process.stderr.write(`unknown command: ${name}\n\n${USAGE}`);
    return 2;
  }
  try {
    return await command(rest);
  } catch (err) {
    if (err instanceof ConfigError) console.error(err.message);
    else if ((err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
      console.error(`${(err as Error).message}\n\n${USAGE}`);
    else console.error(`agentina ${name}: ${(err as Error).message}`);
    return 1;
  }
}
