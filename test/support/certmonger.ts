import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toPem } from '../../pki/pem.js';
import { certsFromPkcs7 } from './openssl.js';
import { exec } from './scep-clients.js';

export interface CertmongerRun {
  /** The request's state while the daemon ran: MONITORING (issued), PENDING (CA said wait), CA_REJECTED... */
  state: string;
  certificatePem: string | undefined;
  /** The GetCertInitial pkiMessage certmonger prepared with its PKCSReq (PEM), for polling. */
  getCertInitialPem: string | undefined;
  /** The key file that message was signed with (the answer is encrypted to it). */
  getCertInitialKeyFile: string;
  log: string;
  dir: string;
}

/**
 * certmonger 0.79 (Debian `certmonger`) enrolling against a SCEP URL, as an administrator would run it:
 * `getcert add-scep-ca` then `getcert request`. A throwaway daemon on a private session bus; as root
 * it would write to /var/lib/certmonger, so the CERTMONGER_*_DIR variables keep it in `dir`.
 * Waits until the request is issued, rejected, or (with `untilPending`) waiting on the CA.
 */
export async function certmongerEnroll(opts: {
  url: string;
  cn: string;
  challenge: string;
  untilPending?: boolean;
  timeoutMs?: number;
}): Promise<CertmongerRun> {
  const dir = isolatedCertmongerDir();
  const script = `
    set -u
    certmonger -s -n >"$DIR/daemon.log" 2>&1 &
    daemon=$!
    trap 'kill $daemon 2>/dev/null' EXIT
    # Give the daemon time to claim its bus name (a getcert call before that would D-Bus-activate a second one).
    sleep 1
    getcert add-scep-ca -s -c test-ca -u "$URL" >>"$DIR/getcert.log" 2>&1
    getcert request -s -c test-ca -k "$DIR/key.pem" -f "$DIR/cert.pem" -N "CN=$CN" -L "$CHALLENGE" -I req \\
      >>"$DIR/getcert.log" 2>&1
    for _ in $(seq 1 600); do
      state=$(sed -n 's/^state=//p' "$DIR"/requests/* 2>/dev/null | head -1)
      echo "$state" >"$DIR/state"
      case "$state" in
        MONITORING|CA_REJECTED|CA_UNREACHABLE|CA_UNCONFIGURED|NEED_GUIDANCE) break ;;
      esac
      # The CA answered PENDING: certmonger keeps its cookie to poll with later.
      if [ "$UNTIL_PENDING" = 1 ] && grep -qs '^ca_cookie=' "$DIR"/requests/*; then echo PENDING >"$DIR/state"; break; fi
      sleep 0.1
    done
    getcert list -s >>"$DIR/getcert.log" 2>&1
  `;
  const env = {
    ...isolatedCertmongerEnv(dir),
    URL: opts.url,
    CN: opts.cn,
    CHALLENGE: opts.challenge,
    UNTIL_PENDING: opts.untilPending ? '1' : '0',
  };
  const session = await exec('dbus-run-session', ['--', 'bash', '-c', script], {
    env,
    timeout: opts.timeoutMs ?? 90_000,
  });
  const requestFile = readdirSync(join(dir, 'requests')).map((f) => join(dir, 'requests', f))[0];
  const request = requestFile ? readFileSync(requestFile, 'utf8') : '';
  return {
    state: safeRead(join(dir, 'state')).trim() || 'NONE',
    certificatePem: existsSync(join(dir, 'cert.pem'))
      ? readFileSync(join(dir, 'cert.pem'), 'utf8')
      : undefined,
    ...getCertInitial(request, join(dir, 'key.pem')),
    log: [session.output, safeRead(join(dir, 'getcert.log')), safeRead(join(dir, 'daemon.log'))].join('\n'),
    dir,
  };
}

/**
 * certmonger's poll: its helper `scep-submit -g` sends the prepared GetCertInitial, given the GetCACert
 * certificates the way the daemon hands them over. Prints the certificate on success (exit 0);
 * other exit codes mean rejected, pending or unreachable.
 */
export async function scepSubmitPoll(opts: {
  url: string;
  raPem: string;
  /** What the daemon passes as the CA certificate (CERTMONGER_SCEP_CA_CERTIFICATE): the root. */
  caPem: string;
  /** The other certificates of GetCACert (CERTMONGER_SCEP_CERTIFICATES): the issuing CA. */
  otherPem: string;
  getCertInitialPem: string;
  dir: string;
}): Promise<{ code: number; output: string }> {
  const files = {
    ra: join(opts.dir, 'ra.pem'),
    ca: join(opts.dir, 'ca.pem'),
    other: join(opts.dir, 'other.pem'),
    gic: join(opts.dir, 'gic.pem'),
  };
  writeFileSync(files.ra, opts.raPem);
  writeFileSync(files.ca, opts.caPem);
  writeFileSync(files.other, opts.otherPem);
  writeFileSync(files.gic, opts.getCertInitialPem);
  return exec(
    '/usr/lib/certmonger/scep-submit',
    ['-u', opts.url, '-r', files.ra, '-N', files.ca, '-I', files.other, '-g', files.gic],
    { timeout: 30_000 },
  );
}

/**
 * certmonger names it scep_gic, or scep_gic_next when it prepared the message with the next key it
 * generated ahead of time (kept beside the key as key.pem.<key_next_marker>.key).
 */
function getCertInitial(request: string, keyFile: string) {
  const current = requestValue(request, 'scep_gic');
  if (current) return { getCertInitialPem: current, getCertInitialKeyFile: keyFile };
  const marker = requestValue(request, 'key_next_marker')?.trim();
  return {
    getCertInitialPem: requestValue(request, 'scep_gic_next'),
    getCertInitialKeyFile: marker ? `${keyFile}.${marker}.key` : keyFile,
  };
}

/** A value of certmonger's request file: `key=first line` then continuation lines starting with a space. */
function requestValue(request: string, key: string): string | undefined {
  const lines = request.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`${key}=`));
  if (start < 0) return undefined;
  const out = [lines[start]!.slice(key.length + 1)];
  for (let i = start + 1; i < lines.length && lines[i]!.startsWith(' '); i++) out.push(lines[i]!.slice(1));
  return `${out.join('\n')}\n`;
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * certmonger's poll for a request it left pending, start to finish: `scep-submit -g` with the RA and
 * CA certificates as the daemon hands them over (our root as "the CA", the rest as others), then the
 * envelope opened with the key the poll was signed with, as the daemon does. `certificate` is set
 * only when the CA answered SUCCESS.
 */
export async function certmongerPoll(
  enrolled: CertmongerRun,
  opts: {
    url: string;
    ra: { raCertificate: Uint8Array; rootCertificate: Uint8Array; caBundle: Uint8Array[] };
  },
): Promise<{ code: number; output: string; certificate: string | undefined }> {
  const others = opts.ra.caBundle.filter(
    (der) =>
      !Buffer.from(der).equals(Buffer.from(opts.ra.raCertificate)) &&
      !Buffer.from(der).equals(Buffer.from(opts.ra.rootCertificate)),
  );
  const polled = await scepSubmitPoll({
    url: opts.url,
    raPem: toPem(opts.ra.raCertificate),
    caPem: toPem(opts.ra.rootCertificate),
    otherPem: others.map((der) => toPem(der)).join(''),
    getCertInitialPem: enrolled.getCertInitialPem!,
    dir: enrolled.dir,
  });
  const envelope = polled.output.match(/-----BEGIN PKCS7-----[\s\S]+?-----END PKCS7-----/)?.[0];
  if (polled.code !== 0 || !envelope) return { ...polled, certificate: undefined };
  writeFileSync(join(enrolled.dir, 'envelope.pem'), envelope);
  const opened = await exec('openssl', [
    'cms',
    '-decrypt',
    '-inform',
    'PEM',
    '-in',
    join(enrolled.dir, 'envelope.pem'),
    '-inkey',
    enrolled.getCertInitialKeyFile,
    '-out',
    join(enrolled.dir, 'certs.p7'),
  ]);
  if (opened.code !== 0) throw new Error(`certmonger's envelope did not open: ${opened.output}`);
  const [certificate] = await certsFromPkcs7(readFileSync(join(enrolled.dir, 'certs.p7')), enrolled.dir);
  return { ...polled, certificate };
}

/** A work directory for one throwaway certmonger daemon, with the folders it keeps its state in. */
export function isolatedCertmongerDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'certmonger-'));
  for (const sub of ['home', 'requests', 'cas', 'local', 'tmp', 'config']) mkdirSync(join(dir, sub));
  return dir;
}

/**
 * The environment that keeps a certmonger daemon and its session bus inside `dir`: as root it would
 * otherwise write to /var/lib/certmonger. `DIR` is what the session scripts refer to.
 */
export function isolatedCertmongerEnv(dir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DIR: dir,
    HOME: join(dir, 'home'),
    XDG_CONFIG_HOME: join(dir, 'home', '.config'),
    XDG_DATA_HOME: join(dir, 'home', '.local', 'share'),
    CERTMONGER_REQUESTS_DIR: join(dir, 'requests'),
    CERTMONGER_CAS_DIR: join(dir, 'cas'),
    CERTMONGER_LOCAL_CA_DIR: join(dir, 'local'),
    CERTMONGER_TMPDIR: join(dir, 'tmp'),
    CERTMONGER_CONFIG_DIR: join(dir, 'config'),
    CERTMONGER_SYSTEM_LOCK_FILE: join(dir, 'lock'),
  };
}
