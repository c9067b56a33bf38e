import { api, ApiError, SESSION_ENDED } from './api';
import { h, mount, type Child } from './dom';
import { errorLine, form, input, showError } from './ui';

/**
 * The frame both surfaces share: sign in, the forced change of a one-time password, sign out, a
 * navigation bar and hash routes (`#/licenses/lic_…`). The session is the HttpOnly cookie; nothing
 * about it is kept in the page.
 */
export type Me = {
  id: string;
  email: string;
  displayName: string;
  mustChangePassword: boolean;
  customerName?: string;
  /** Admins only. */
  role?: string;
  totpEnrolled?: boolean;
  totpRequired?: boolean;
};

export type RouteContext = {
  me: Me;
  params: string[];
  query: URLSearchParams;
  go(hash: string): void;
  refresh(): void;
};
export type View = (ctx: RouteContext) => Promise<Node>;

export type ShellOptions = {
  title: string;
  /** '/v1/admin' or '/v1/portal'. */
  prefix: string;
  nav: Array<[hash: string, label: string]>;
  /** First path segment → view; `''` is the home view. */
  routes: Record<string, View>;
  home: string;
  whoami(me: Me): string;
  /** Sign-in asks for an optional second-factor code (admins). */
  secondFactor?: boolean;
  /** A step the signed-in account must take before anything else (null: none); `done` restarts. */
  interstitial?(me: Me, done: () => Promise<void>): HTMLElement | null;
};

export function startShell(root: HTMLElement, o: ShellOptions): void {
  let me: Me | null = null;

  const go = (hash: string) => {
    if (location.hash === hash) void render();
    else location.hash = hash;
  };

  function loginView(notice?: string): void {
    document.title = `${o.title} · sign in`;
    const f = form(
      {
        submit: 'Sign in',
        class: 'card login',
        label: 'Sign in',
        action: async (v) => {
          await api('POST', `${o.prefix}/login`, {
            email: v.email ?? '',
            password: v.password ?? '',
            ...(v.code ? { code: v.code } : {}),
          });
          await start();
        },
      },
      h('h1', {}, o.title),
      input('Email', { name: 'email', type: 'email', required: true, autocomplete: 'username' }),
      input('Password', { name: 'password', type: 'password', required: true, autocomplete: 'current-password' }),
      o.secondFactor
        ? input('Authenticator or recovery code', {
            name: 'code',
            autocomplete: 'one-time-code',
            maxlength: 40,
            hint: 'Only if you have set up a second factor.',
          })
        : null,
    );
    if (notice) f.querySelector('.error')!.textContent = notice;
    mount(root, h('main', { class: 'center' }, f));
    f.querySelector('input')?.focus();
  }

  function changePasswordView(current: Me): void {
    document.title = `${o.title} · choose a password`;
    const f = form(
      {
        submit: 'Set password',
        class: 'card login',
        label: 'Choose a new password',
        action: async (v) => {
          if (v.newPassword !== v.repeat) throw new Error('The two new passwords differ.');
          await api('POST', `${o.prefix}/me/password`, {
            currentPassword: v.currentPassword ?? '',
            newPassword: v.newPassword ?? '',
          });
          await start();
        },
      },
      h('h1', {}, 'Choose your password'),
      h('p', {}, `Signed in as ${current.email} with a one-time password. Choose your own before you continue.`),
      input('One-time password', {
        name: 'currentPassword',
        type: 'password',
        required: true,
        autocomplete: 'current-password',
      }),
      input('New password', {
        name: 'newPassword',
        type: 'password',
        required: true,
        autocomplete: 'new-password',
        hint: 'At least 12 characters.',
      }),
      input('New password again', { name: 'repeat', type: 'password', required: true, autocomplete: 'new-password' }),
    );
    mount(root, h('main', { class: 'center' }, f, signOutButton()));
  }

  function signOutButton(): HTMLElement {
    const error = errorLine();
    const b = h('button', { type: 'button', class: 'secondary' }, 'Sign out');
    b.addEventListener('click', () => {
      api('POST', `${o.prefix}/logout`).then(
        () => {
          me = null;
          history.replaceState(null, '', location.pathname);
          loginView();
        },
        (err: unknown) => showError(error, err),
      );
    });
    return h('span', { class: 'signout' }, b, error);
  }

  const main = h('main', { id: 'main', class: 'content', tabindex: '-1' });
  const nav = h('nav', { 'aria-label': 'Sections' });

  function frame(current: Me): void {
    nav.replaceChildren(...o.nav.map(([hash, label]) => h('a', { href: hash, 'data-nav': hash }, label)));
    mount(
      root,
      skipLink(),
      h(
        'header',
        { class: 'topbar' },
        h('span', { class: 'brand' }, o.title),
        nav,
        h('span', { class: 'whoami', 'data-testid': 'whoami' }, o.whoami(current)),
        signOutButton(),
      ),
      main,
    );
  }

  // Hash routes own location.hash, so the skip link moves focus instead of navigating.
  function skipLink(): HTMLElement {
    const a = h('a', { class: 'skip', href: '#main' }, 'Skip to content');
    a.addEventListener('click', (e) => {
      e.preventDefault();
      main.focus();
    });
    return a;
  }

  // Each render has a number; a slower, earlier render (the home page still loading when the
  // address changes) must not replace the page the user has since moved to.
  let latestRender = 0;

  async function render(moveFocus = false): Promise<void> {
    if (!me) return;
    const thisRender = ++latestRender;
    const [path = '', qs = ''] = location.hash.replace(/^#\/?/, '').split('?');
    const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    const name = parts[0] ?? '';
    const view = o.routes[name] ?? o.routes[o.home];
    for (const a of nav.querySelectorAll('a')) {
      if (a.getAttribute('data-nav') === `#/${name || o.home}`) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const label = o.nav.find(([hsh]) => hsh === `#/${name || o.home}`)?.[1];
    document.title = label ? `${label} · ${o.title}` : o.title;
    main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
    const ctx: RouteContext = {
      me,
      params: parts.slice(1),
      query: new URLSearchParams(qs),
      go,
      refresh: () => void render(),
    };
    try {
      const node = await view!(ctx);
      if (thisRender !== latestRender) return;
      main.replaceChildren(node);
      // After navigating, start reading at the new page (not after an in-page refresh).
      if (moveFocus) main.focus();
    } catch (err) {
      // The SESSION_ENDED listener has shown the sign-in form already.
      if (err instanceof ApiError && err.status === 401) return;
      if (thisRender !== latestRender) return;
      const line = errorLine();
      showError(line, err);
      main.replaceChildren(line);
    }
  }

  async function start(): Promise<void> {
    try {
      me = await api<Me>('GET', `${o.prefix}/me`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return loginView();
      // 403 here means: this cookie is not for this surface; sign in to this one.
      if (err instanceof ApiError && err.status === 403) return loginView();
      const line = errorLine();
      showError(line, err);
      mount(root, h('main', { class: 'center' }, h('div', { class: 'card' }, h('h1', {}, o.title), line)));
      return;
    }
    if (me.mustChangePassword) return changePasswordView(me);
    const step = o.interstitial?.(me, start);
    if (step) return mount(root, h('main', { class: 'center' }, step, signOutButton()));
    frame(me);
    await render();
  }

  window.addEventListener('hashchange', () => void render(true));
  window.addEventListener(SESSION_ENDED, () => {
    if (!me) return;
    me = null;
    loginView('Your session has ended; sign in again.');
  });
  void start();
}

export function page(title: string, ...children: Child[]): HTMLElement {
  return h('div', { class: 'page' }, h('h1', {}, title), ...children);
}
