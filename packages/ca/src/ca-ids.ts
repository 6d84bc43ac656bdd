/** The hierarchy the ceremony creates (ids are short: they appear in CRL distribution point URLs). */
export const CA_IDS = {
  root: 'root',
  deviceIssuing: 'fpd1',
  organisation: 'org1',
} as const;
