import { existsSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { DynamicModule } from '@nestjs/common';
import { ServeStaticModule } from '@nestjs/serve-static';
import type { onRequestHookHandler } from 'fastify';
import { pathOf, type HttpReply } from './http.js';
import { setPageHeaders } from './page-headers.js';

export const UI_ROOT = '/ui';

export const UI_CONTENT_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/**
 * Every page and file of the UI: scripts and styles only from this origin (React sets
 * inline styles through the DOM, which the policy allows), no framing, no referrer. The
 * key the user signs in with lives in the tab's sessionStorage and goes only in request
 * headers, so a script or style injected from elsewhere is what these guard against.
 */
function securityHeaders(dir: string) {
  const assets = `assets${sep}`;
  return (res: HttpReply, path: string): void => {
    setPageHeaders(res, UI_CONTENT_POLICY);
    // Bundles carry a hash of their content in their name: they never change. The page itself is checked each time.
    res.header(
      'cache-control',
      relative(dir, path).startsWith(assets) ? 'public, max-age=31536000, immutable' : 'no-cache',
    );
  };
}

export function uiBuilt(dir: string): boolean {
  return existsSync(join(dir, 'index.html'));
}

/**
 * The web UI's static files at /ui: open like /docs (they hold no data; every call the
 * page makes carries the user's key and is checked like any other). Everything in the
 * directory but dotfiles is served, so UI_DIR must hold the built UI only.
 */
export function uiModule(dir: string): DynamicModule {
  return ServeStaticModule.forRoot({
    rootPath: dir,
    serveRoot: UI_ROOT,
    serveStaticOptions: { index: 'index.html', fallthrough: true, setHeaders: securityHeaders(dir), dotfiles: 'deny' },
  });
}

/** When the UI was not built (an API started from a partial build), /ui says so instead of a bare 404 (the path only in the API's log). */
export function uiMissing(): onRequestHookHandler {
  return (req, reply, done) => {
    const path = pathOf(req);
    if (path !== UI_ROOT && !path.startsWith(`${UI_ROOT}/`)) return done();
    void reply
      .status(404)
      .type('text/plain; charset=utf-8')
      .send('The web UI is not built here: run npm run build (or point UI_DIR at a built UI) and restart the API.\n');
  };
}
