import { headerValue, httpRequest, type HttpResponse } from './http';
import { parseChallenges, type Challenge } from './challenge';
import type { Credential, CredentialSource } from './credentials';
import { errorForResponse, errorForTransport, RegistryError, type Operation } from './registryErrors';
import { TransportError } from './http';

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Tokens are renewed this long before the registry says they expire, so none expires mid-request. */
const EXPIRY_MARGIN_MS = 10_000;
const DEFAULT_TOKEN_LIFETIME_S = 60;

/**
 * Authorization for one registry: learns its scheme from the first 401 challenge, then sends Basic
 * credentials or Bearer tokens. Tokens are fetched from the challenge's realm (anonymously or with
 * credentials) and cached per scope until they expire.
 */
export class RegistryAuth {
  private scheme: 'none' | 'basic' | 'bearer' = 'none';
  private bearer?: { realm: string; service?: string };
  private readonly tokens = new Map<string, CachedToken>();
  private credential?: Credential | null;

  constructor(
    readonly registry: string,
    private readonly credentials: CredentialSource | undefined,
    private readonly transport: { insecure?: boolean; signal?: AbortSignal; timeoutMs?: number },
  ) {}

  async loadCredential(): Promise<Credential | undefined> {
    if (this.credential === undefined) this.credential = (await this.credentials?.get(this.registry)) ?? null;
    return this.credential ?? undefined;
  }

  get credentialDescription(): string | undefined {
    return this.credentials?.description;
  }

  /** The Authorization header for a request in `scopes`, or none when nothing is known yet. */
  async header(scopes: string[]): Promise<string | undefined> {
    if (this.scheme === 'basic') {
      const c = await this.loadCredential();
      return c && !c.identityToken ? basic(c) : undefined;
    }
    if (this.scheme === 'bearer') {
      const cached = this.tokens.get(scopeKey(scopes));
      if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
      if (this.bearer) return `Bearer ${await this.fetchToken(scopes)}`;
    }
    return undefined;
  }

  /**
   * Handles a 401: learns the scheme from its challenge and forgets a token the registry refused (it
   * expired early, or was revoked). Returns whether the request is worth sending again.
   */
  async onUnauthorized(response: HttpResponse, scopes: string[], sentAuthorization: string | undefined): Promise<boolean> {
    const challenges = parseChallenges(headerValue(response.headers, 'www-authenticate'));
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basicChallenge = challenges.find((c) => c.scheme === 'basic');
    if (bearer?.params.realm) {
      const first = this.scheme !== 'bearer';
      this.scheme = 'bearer';
      this.bearer = { realm: bearer.params.realm, ...(bearer.params.service ? { service: bearer.params.service } : {}) };
      const key = scopeKey(scopes);
      const hadToken = sentAuthorization?.startsWith('Bearer ');
      this.tokens.delete(key);
      // A challenge may ask for more than the caller knew (e.g. a mount's source repository).
      if (bearer.params.scope) for (const s of bearer.params.scope.split(' ')) if (!scopes.includes(s)) scopes.push(s);
      return first || !!hadToken;
    }
    if (basicChallenge) {
      const first = this.scheme !== 'basic';
      this.scheme = 'basic';
      const c = await this.loadCredential();
      return first && !!c && !c.identityToken;
    }
    return false;
  }

  private async fetchToken(scopes: string[]): Promise<string> {
    const { realm, service } = this.bearer!;
    const url = new URL(realm);
    if (service) url.searchParams.set('service', service);
    for (const scope of scopes) url.searchParams.append('scope', scope);
    const credential = await this.loadCredential();
    const op: Operation = { registry: this.registry, action: `getting a token from ${url.host}` };
    let response: HttpResponse;
    try {
      if (credential?.identityToken) {
        // An identity token is an OAuth2 refresh token: exchange it with a POST, as Docker does.
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: credential.secret, client_id: 'wasm-filter-studio', scope: scopes.join(' ') });
        if (service) form.set('service', service);
        response = await httpRequest({
          method: 'POST',
          url: new URL(realm),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: Buffer.from(form.toString()),
          ...this.requestOptions(),
        });
      } else {
        response = await httpRequest({ method: 'GET', url, headers: credential ? { authorization: basic(credential) } : {}, ...this.requestOptions() });
      }
    } catch (err) {
      if (err instanceof TransportError) throw errorForTransport(op, err, url.protocol === 'https:' ? 'https' : 'http');
      throw err;
    }
    if (response.status === 401 || response.status === 403) {
      throw errorForResponse({ ...op, action: 'logging in' }, { ...response, status: 401 }, { hadCredentials: !!credential, ...(this.credentials ? { credentialSource: this.credentials.description } : {}) });
    }
    if (response.status !== 200) throw errorForResponse(op, response);
    let body: { token?: string; access_token?: string; expires_in?: number; issued_at?: string };
    try {
      body = JSON.parse(response.body.toString('utf8'));
    } catch {
      throw new RegistryError(`The token service ${url.host} answered with something that is not JSON.`, undefined, 'E_BAD_TOKEN', op, 200);
    }
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`The token service ${url.host} answered without a token.`, undefined, 'E_BAD_TOKEN', op, 200);
    const issued = body.issued_at ? Date.parse(body.issued_at) : NaN;
    const start = Number.isFinite(issued) ? Math.min(issued, Date.now()) : Date.now();
    const lifetime = (body.expires_in && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_LIFETIME_S) * 1000;
    this.tokens.set(scopeKey(scopes), { token, expiresAt: start + lifetime - EXPIRY_MARGIN_MS });
    return token;
  }

  private requestOptions() {
    return {
      ...(this.transport.insecure ? { insecure: true } : {}),
      ...(this.transport.signal ? { signal: this.transport.signal } : {}),
      ...(this.transport.timeoutMs ? { timeoutMs: this.transport.timeoutMs } : {}),
      maxResponseBytes: 1024 * 1024,
    };
  }

  /** Whether the registry has asked for authorization (Basic or Bearer) so far. */
  get challenged(): boolean {
    return this.scheme !== 'none';
  }

  get hasCredential(): boolean {
    return !!this.credential;
  }

  get challenge(): Challenge | undefined {
    return this.bearer ? { scheme: 'bearer', params: { realm: this.bearer.realm, ...(this.bearer.service ? { service: this.bearer.service } : {}) } } : undefined;
  }
}

function basic(c: Credential): string {
  return `Basic ${Buffer.from(`${c.username}:${c.secret}`).toString('base64')}`;
}

function scopeKey(scopes: string[]): string {
  return [...scopes].sort().join(' ');
}
