import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DynamicModule } from '@nestjs/common';
import { ServeStaticModule } from '@nestjs/serve-static';
import type { NextFunction, Request, Response } from 'express';

export const UI_ROOT = '/ui';

/**
 * Every page and file of the UI: scripts only from this origin, no framing, no
 * referrer. The key the user signs in with lives in the tab's sessionStorage and goes
 * only in request headers, so a script injected from elsewhere is what these guard against.
 */
function securityHeaders(res: Response, path: string): void {
  res.setHeader('content-security-policy', "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'");
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('referrer-policy', 'no-referrer');
  // Bundles carry a hash of their content in their name: they never change. The page itself is checked each time.
  res.setHeader('cache-control', /[\\/]assets[\\/]/.test(path) ? 'public, max-age=31536000, immutable' : 'no-cache');
}

export function uiBuilt(dir: string): boolean {
  return existsSync(join(dir, 'index.html'));
}

/**
 * The web UI's static files at /ui: open like /docs (they hold no data; every call the
 * page makes carries the user's key and is checked like any other).
 */
export function uiModule(dir: string): DynamicModule {
  return ServeStaticModule.forRoot({
    rootPath: dir,
    serveRoot: UI_ROOT,
    serveStaticOptions: { index: 'index.html', fallthrough: true, setHeaders: securityHeaders, dotfiles: 'deny' },
  });
}

/** When the UI was not built (an API started from a partial build), /ui says so instead of a bare 404. */
export function uiMissing(dir: string) {
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.path !== UI_ROOT && !req.path.startsWith(`${UI_ROOT}/`)) return next();
    res.status(404).type('text/plain').send(`The web UI is not built (no ${join(dir, 'index.html')}): run npm run build, or set UI_DIR.\n`);
  };
}
