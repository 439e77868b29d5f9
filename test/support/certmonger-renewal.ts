import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isolatedCertmongerDir, isolatedCertmongerEnv } from './certmonger.js';
import { exec } from './scep-clients.js';

export interface CertmongerRenewalRun {
  /** State after the first request: MONITORING when issued. */
  firstState: string;
  firstCertificatePem: string | undefined;
  /** State after `getcert resubmit`: MONITORING when the renewal was issued. */
  renewedState: string;
  renewedCertificatePem: string | undefined;
  log: string;
  dir: string;
}

/**
 * certmonger 0.79 enrolls (`getcert request -w`), then renews the tracked request with
 * `getcert resubmit -w` and the `resubmitChallenge` (a wrong one proves the challenge is not what
 * got the renewal through). With the CA advertising `Renewal`, certmonger's scep-submit signs the
 * renewal with the certificate it holds (its `-n` option would turn that off). Same isolated,
 * throwaway daemon as certmongerEnroll.
 */
export async function certmongerEnrollAndRenew(opts: {
  url: string;
  cn: string;
  challenge: string;
  resubmitChallenge: string;
  timeoutMs?: number;
}): Promise<CertmongerRenewalRun> {
  const dir = isolatedCertmongerDir();
  const script = `
    set -u
    certmonger -s -n >"$DIR/daemon.log" 2>&1 &
    daemon=$!
    trap 'kill $daemon 2>/dev/null' EXIT
    sleep 1
    state() { sed -n 's/^state=//p' "$DIR"/requests/* 2>/dev/null | head -1; }
    wait_done() {
      for _ in $(seq 1 600); do
        s=$(state)
        case "$s" in MONITORING|CA_REJECTED|CA_UNREACHABLE|CA_UNCONFIGURED|NEED_GUIDANCE) break ;; esac
        sleep 0.1
      done
      state
    }
    getcert add-scep-ca -s -c test-ca -u "$URL" >>"$DIR/getcert.log" 2>&1
    getcert request -s -c test-ca -k "$DIR/key.pem" -f "$DIR/cert.pem" -N "CN=$CN" -L "$CHALLENGE" -I req \\
      >>"$DIR/getcert.log" 2>&1
    wait_done >"$DIR/state1"
    cp "$DIR/cert.pem" "$DIR/cert1.pem" 2>/dev/null
    # Certificate times have one-second resolution: renew in a later second than the first issuance.
    sleep 1.2
    getcert resubmit -s -i req -L "$RESUBMIT_CHALLENGE" >>"$DIR/getcert.log" 2>&1
    # resubmit moves the request out of MONITORING first; wait for it to leave, then to settle.
    for _ in $(seq 1 100); do [ "$(state)" != MONITORING ] && break; cmp -s "$DIR/cert.pem" "$DIR/cert1.pem" || break; sleep 0.1; done
    wait_done >"$DIR/state2"
    getcert list -s >>"$DIR/getcert.log" 2>&1
  `;
  const env = {
    ...isolatedCertmongerEnv(dir),
    URL: opts.url,
    CN: opts.cn,
    CHALLENGE: opts.challenge,
    RESUBMIT_CHALLENGE: opts.resubmitChallenge,
  };
  const session = await exec('dbus-run-session', ['--', 'bash', '-c', script], {
    env,
    timeout: opts.timeoutMs ?? 120_000,
  });
  const read = (name: string) =>
    existsSync(join(dir, name)) ? readFileSync(join(dir, name), 'utf8') : undefined;
  return {
    firstState: read('state1')?.trim() || 'NONE',
    firstCertificatePem: read('cert1.pem'),
    renewedState: read('state2')?.trim() || 'NONE',
    renewedCertificatePem: read('cert.pem'),
    log: [session.output, read('getcert.log') ?? '', read('daemon.log') ?? ''].join('\n'),
    dir,
  };
}
