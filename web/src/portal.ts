import './style.css';
import { api } from './api';
import { h, mount } from './dom';

const root = document.getElementById('app')!;

async function show(): Promise<void> {
  try {
    const me = await api<{ email?: string }>('GET', '/v1/portal/me');
    mount(root, h('main', { class: 'card' }, h('h1', {}, 'Customer portal'), h('p', {}, `Signed in as ${me.email ?? ''}`)));
  } catch {
    mount(root, h('main', { class: 'card' }, h('h1', {}, 'Customer portal'), h('p', {}, 'Sign in to see your licenses.')));
  }
}

void show();
