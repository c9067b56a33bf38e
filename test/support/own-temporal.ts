import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { freePort } from '../../scripts/stack/ports';
import type { ManagedProcess } from '../../scripts/stack/processes';
import { startTemporalDevServer } from '../../scripts/stack/temporal';
import { testEnv } from './env';
import { quietTemporalRuntime } from './temporal';

/**
 * A Temporal dev server of a test's own (not the shared one): an empty store for a restore drill,
 * or a SQLite file the test can SIGKILL the server over and start it again on.
 */
export type OwnTemporal = {
  address: string;
  client: Client;
  nativeConnection: NativeConnection;
  /** SIGKILLs the server (no shutdown of any kind). */
  kill(): Promise<void>;
  /** Starts it again on the same port and file. */
  restart(): Promise<void>;
  stop(): Promise<void>;
};

export async function startOwnTemporal(opts: { dbFile?: string; logFile?: string } = {}): Promise<OwnTemporal> {
  quietTemporalRuntime();
  const port = await freePort();
  const start = () =>
    startTemporalDevServer({
      cli: testEnv('AGENTINA_TEST_TEMPORAL_CLI'),
      host: '127.0.0.1',
      port,
      namespace: 'default',
      ...(opts.dbFile ? { dbFile: opts.dbFile } : {}),
      ...(opts.logFile ? { logFile: opts.logFile } : {}),
    });
  let proc: ManagedProcess = await start();
  const address = `127.0.0.1:${port}`;
  const connection = await Connection.connect({ address });
  const nativeConnection = await NativeConnection.connect({ address });
  return {
    address,
    client: new Client({ connection, namespace: 'default' }),
    nativeConnection,
    async kill() {
      proc.child.kill('SIGKILL');
      await proc.exited;
    },
    async restart() {
      proc = await start();
    },
    async stop() {
      await connection.close();
      await nativeConnection.close();
      await proc.stop();
    },
  };
}
