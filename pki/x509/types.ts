/** Subject alternative names as policy code and templates see them: text, grouped by kind. */
export interface SubjectAltNames {
  dns: string[];
  email: string[];
  uri: string[];
  /** Dotted IPv4 or RFC 5952 IPv6 text. */
  ip: string[];
}

export const emptySubjectAltNames = (): SubjectAltNames => ({ dns: [], email: [], uri: [], ip: [] });
