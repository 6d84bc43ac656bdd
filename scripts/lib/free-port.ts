import { createServer } from 'node:net';

/** A free TCP port on loopback, for a program started beside the sites (it must not meet their ports, or another run's). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });
}
