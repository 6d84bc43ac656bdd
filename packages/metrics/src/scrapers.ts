import { BlockList, isIP } from 'node:net';
import { FleetError } from '@fleetpki/core';

/** Who may scrape when the configuration names nobody: this host only. */
export const DEFAULT_SCRAPERS = ['127.0.0.0/8', '::1/128'] as const;

/**
 * The addresses allowed to read /metrics (sites.<id>.metrics.scrapers: addresses or CIDR ranges). The
 * figures name HSM keys and tokens, issuance volumes and the site's role: not for every client of the
 * API or of the status responder, which relying parties on the internet reach.
 */
export function scraperList(entries: readonly string[] = DEFAULT_SCRAPERS): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, bits] = entry.split('/');
    const family = isIP(address ?? '');
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
    if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
      throw new FleetError('CONFIG_INVALID', `invalid configuration: metrics scraper "${entry}" is not an IP address or CIDR range (sites.<id>.metrics.scrapers)`);
    }
    list.addSubnet(address!, prefix, family === 6 ? 'ipv6' : 'ipv4');
  }
  return list;
}

/** Whether `ip` (as the socket reports it; IPv4-mapped IPv6 included) may scrape. */
export function mayScrape(list: BlockList, ip: string | undefined): boolean {
  if (!ip) return false;
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  if (v4) return list.check(v4, 'ipv4');
  return isIP(ip) === 6 ? list.check(ip, 'ipv6') : list.check(ip, 'ipv4');
}

/** The answer to a scrape from an address not among the scrapers (every metrics listener gives the same). */
export const SCRAPE_FORBIDDEN = { code: 'METRICS_FORBIDDEN', message: 'this address may not read metrics (sites.<id>.metrics.scrapers)' } as const;
