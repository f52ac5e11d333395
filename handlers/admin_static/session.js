// The admin token for this tab only: sessionStorage, never a URL, cookie or localStorage.
const KEY = "actorbase.admin";

export const session = {
  get: () => sessionStorage.getItem(KEY),
  set: (token) => sessionStorage.setItem(KEY, token),
  clear: () => sessionStorage.removeItem(KEY),
};
