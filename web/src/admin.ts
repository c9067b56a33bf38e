import './style.css';
import { api, ApiError } from './api';
import { formValues, h, mount } from './dom';

const root = document.getElementById('app')!;

function loginView(message?: string): void {
  const error = h('p', { class: 'error', role: 'alert' }, message ?? '');
  const form = h(
    'form',
    {
      class: 'card',
      onsubmit: (e: Event) => {
        e.preventDefault();
        const { email, password } = formValues(e.target as HTMLFormElement);
        api('POST', '/v1/admin/login', { email, password }).then(
          () => void show(),
          (err: unknown) => {
            error.textContent = err instanceof ApiError ? err.message : 'Could not sign in.';
          },
        );
      },
    },
    h('h1', {}, 'Agentina admin'),
    h('label', {}, 'Email', h('input', { name: 'email', type: 'email', autocomplete: 'username', required: true })),
    h('label', {}, 'Password', h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    h('button', { type: 'submit' }, 'Sign in'),
    error,
  ) as HTMLFormElement;
  mount(root, form);
}

async function show(): Promise<void> {
  try {
    const me = await api<{ email?: string; admin?: { email: string } }>('GET', '/v1/admin/me');
    const email = me.email ?? me.admin?.email ?? '';
    mount(root, h('main', { class: 'card' }, h('h1', {}, 'Agentina admin'), h('p', { 'data-testid': 'whoami' }, `Signed in as ${email}`)));
  } catch {
    loginView();
  }
}

void show();
