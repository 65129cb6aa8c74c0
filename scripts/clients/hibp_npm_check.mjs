// Drives the npm package `hibp` against a leakdex server.
// Usage: node hibp_npm_check.mjs BASE_URL EXPECTED.json
// EXPECTED.json: {"passwords": {"pw": count, ...}, "ntlm_ranges": {"PREFIX": "body", ...}}
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const [baseUrl, expectedPath, modulesDir] = process.argv.slice(2);
const expected = JSON.parse(readFileSync(expectedPath, 'utf8'));
const require = createRequire(pathToFileURL(modulesDir + '/'));
const { pwnedPassword, pwnedPasswordRange } = await import(pathToFileURL(require.resolve('hibp')));

let failures = 0;
let passed = 0;
for (const [password, count] of Object.entries(expected.passwords)) {
  const got = await pwnedPassword(password, { baseUrl });
  if (got !== count) {
    console.error(`hibp pwnedPassword: expected ${count}, got ${got} (password #${passed + failures + 1})`);
    failures++;
  } else {
    passed++;
  }
}
for (const [prefix, body] of Object.entries(expected.ntlm_ranges)) {
  const want = {};
  for (const row of body.split('\r\n').filter(Boolean)) {
    const [suffix, count] = row.split(':');
    want[suffix] = Number.parseInt(count, 10);
  }
  const got = await pwnedPasswordRange(prefix, { baseUrl, mode: 'ntlm' });
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    console.error(`hibp pwnedPasswordRange(${prefix}, ntlm): ${Object.keys(got).length} rows, expected ${Object.keys(want).length}`);
    failures++;
  } else {
    passed++;
  }
  const sha1 = await pwnedPasswordRange(prefix, { baseUrl, mode: 'sha1', addPadding: true });
  if (typeof sha1 !== 'object') {
    console.error(`hibp pwnedPasswordRange(${prefix}, sha1, padding) returned ${typeof sha1}`);
    failures++;
  } else {
    passed++;
  }
}
console.log(`hibp (npm): ${passed} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
