import { loadConfig } from '@fleetpki/core';
import { TakeoverRuns } from '@fleetpki/drills';
const config = loadConfig({ ...process.env, FLEETPKI_SITE: 'a' });
const t = await TakeoverRuns.start(config, { devices: 3000, log: console.log });
try {
  for (let i = 0; i < 2; i++) console.log(JSON.stringify(await t.run('kill-postgres')));
} catch (e) { console.log(String(e)); }
await t.stop();
