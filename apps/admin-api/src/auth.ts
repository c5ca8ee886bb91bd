import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from 'jose';

/** Who called: the token's subject and realm roles. */
export interface Caller {
  subject: string;
  roles: string[];
}

export class AuthError extends Error {
  constructor(
    readonly statusCode: 401 | 403 | 503,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'AuthError';
  }
}

export interface AuthOptions {
  issuer: string;
  jwksUrl: string;
  audience?: string;
  clockToleranceS: number;
  /** Least time between refetches triggered by an unknown key id (rotation), ms. */
  jwksCooldownMs: number;
}

/**
 * Verifies Keycloak-issued RS256 access tokens against the issuer's JWKS (jose: fetched
 * lazily, cached, refetched when a token names an unknown key id); each route then requires
 * its realm role (requireRole). A JWKS that cannot be fetched means we cannot tell: 503, not 401.
 */
export function createAuthenticator(options: AuthOptions): (authorization: string | undefined) => Promise<Caller> {
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl), {
    timeoutDuration: 2_000,
    cooldownDuration: options.jwksCooldownMs,
    cacheMaxAge: 600_000,
  });
  return async (authorization) => {
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/i.exec(authorization ?? '');
    if (!authorization) throw new AuthError(401, 'missing bearer token');
    if (!match) throw new AuthError(401, 'malformed bearer token');
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(match[1]!, jwks, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: ['RS256'],
        clockTolerance: options.clockToleranceS,
        // jose checks exp only when present; a token without one would never expire.
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      if (err instanceof errors.JWKSTimeout || (err instanceof TypeError && /fetch/i.test(err.message)) || isFetchFailure(err)) {
        throw new AuthError(503, 'token keys are unavailable; try again later', { cause: err });
      }
      throw new AuthError(401, tokenProblem(err), { cause: err });
    }
    const roles = (payload.realm_access as { roles?: unknown } | undefined)?.roles;
    const caller = {
      subject: String(payload.sub ?? ''),
      roles: Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : [],
    };
    return caller;
  };
}

/** 403 unless the caller holds the realm role. */
export function requireRole(caller: Caller, role: string): void {
  if (!caller.roles.includes(role)) throw new AuthError(403, `the '${role}' role is required`);
}

function isFetchFailure(err: unknown): boolean {
  const e = err as { code?: string; cause?: { code?: string } } | null;
  return e?.code === 'ERR_JOSE_GENERIC' && /fetch|status code|JSON Web Key Set/i.test(String((err as Error).message));
}

function tokenProblem(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim '${err.claim}' is invalid`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token algorithm is not allowed';
  if (err instanceof errors.JWKSNoMatchingKey) return 'token signed by an unknown key';
  return 'invalid token';
}
