import { createServer } from 'node:net';
import { FleetError } from '@fleetpki/core';

export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** Before starting a part: its port must be free, or the error says which variable moves it. */
export async function assertPortFree(port: number, part: string, variable: string, host = '127.0.0.1'): Promise<void> {
  // A part on its own host (a network namespace) has that host's ports to itself.
  if (host !== '127.0.0.1') return;
  if (await isPortFree(port)) return;
  throw new FleetError('SITES_PORT_IN_USE', `${part} cannot start: 127.0.0.1:${port} is already in use by another process (another checkout's sites? stop them with \`pnpm sites down\` there, or set ${variable})`);
}
