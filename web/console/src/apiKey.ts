/** The console asks for an API key once per browser tab and keeps it in sessionStorage (not localStorage). */

const STORAGE_KEY = "orgmail.apiKey";

export function storedApiKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function storeApiKey(key: string | null): void {
  try {
    if (key === null) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    /* storage disabled: the key lives only as long as the page */
  }
}
