// The browser's session: tokens, role and the current cart, kept in localStorage so that a
// reload (or a new tab) stays signed in. Components read it through `useSession`.
import { useSyncExternalStore } from "react";

export interface Session {
  accessToken?: string;
  refreshToken?: string;
  userId?: string;
  role?: string;
  email?: string;
  cartId?: string;
}

const KEY = "commerce.session";
const listeners = new Set<() => void>();

function read(): Session {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : {};
  } catch {
    return {};
  }
}

let current: Session = read();

export function getSession(): Session {
  return current;
}

export function setSession(update: Partial<Session> | ((s: Session) => Session)) {
  current = typeof update === "function" ? update(current) : { ...current, ...update };
  localStorage.setItem(KEY, JSON.stringify(current));
  listeners.forEach((l) => l());
}

export function clearAuth() {
  setSession(() => ({}));
}

window.addEventListener("storage", (e) => {
  if (e.key === KEY) {
    current = read();
    listeners.forEach((l) => l());
  }
});

export function useSession(): Session {
  return useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => current,
  );
}
