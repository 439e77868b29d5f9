import type { KeyAlgorithm } from '../pki/keys.js';

/** Key usage names as in RFC 5280 KeyUsage. */
export type KeyUsageName =
  | 'digitalSignature'
  | 'nonRepudiation'
  | 'keyEncipherment'
  | 'dataEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign';

export interface CertificateTemplate {
  validitySeconds: number;
  keyUsages: KeyUsageName[];
  /** Dotted OIDs, e.g. 1.3.6.1.5.5.7.3.2 (clientAuth). */
  extendedKeyUsages: string[];
  /** Smallest RSA modulus accepted in a CSR. */
  minRsaBits: number;
  /** EC curves accepted in a CSR. */
  allowedCurves: Array<'P-256' | 'P-384'>;
}

export type MdmVerifierConfig = { type: 'static-challenge'; challenge: string };

export type CaConfig = {
  type: 'local-hsm';
  /** Label of the issuing CA key and certificate in the token. */
  keyLabel: string;
  keyAlgorithm: KeyAlgorithm;
  /** Subject of the issuing CA, one attribute per RDN, e.g. [['CN','Dev Issuing CA'],['O','Device PKI']]. */
  subject: Array<[string, string]>;
};

export interface Profile {
  name: string;
  mdm: MdmVerifierConfig;
  ca: CaConfig;
  template: CertificateTemplate;
  /** How long the API waits for the workflow before answering PENDING. */
  enrollmentWaitMs: number;
  /** Renewal point as a fraction of the lifetime (DESIGN.md: default 2/3). */
  renewalFraction: number;
}

export interface RootCaConfig {
  keyLabel: string;
  keyAlgorithm: KeyAlgorithm;
  subject: Array<[string, string]>;
  validityDays: number;
}

export interface PkiConfig {
  rootCa: RootCaConfig;
  /** RA key: decrypts requests and signs CertReps. RSA, because SCEP key transport is RSA. */
  ra: { keyLabel: string; keyAlgorithm: 'rsa-2048' | 'rsa-3072'; subject: Array<[string, string]> };
  profiles: Profile[];
}
