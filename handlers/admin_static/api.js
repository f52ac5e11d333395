// The dashboard's HTTP client: the admin token goes in the Authorization header only,
// and every failure is an ApiError in the server's error shape {code, message, status}.
// (To move onto the @actorbase/client JS library once it is merged.)
import { session } from "./session.js";

export class ApiError extends Error {
  constructor({ code = "INTERNAL", message = "Request failed", status = 0, details } = {}) {
    super(message);
    Object.assign(this, { code, status, details });
  }
}

export async function request(method, path, { json, query, form } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Authorization: `Bearer ${session.get() || ""}` };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body, cache: "no-store", credentials: "omit" });
  } catch (e) {
    throw new ApiError({ code: "NETWORK", message: `Server unreachable: ${e.message}` });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(data && data.error ? data.error : { status: response.status });
  return data;
}

export const api = {
  get: (path, query) => request("GET", path, { query }),
  post: (path, json) => request("POST", path, { json }),
  patch: (path, json) => request("PATCH", path, { json }),
  del: (path) => request("DELETE", path),
  upload: (form) => request("POST", "/api/storage/upload", { form }),
};

export const enc = encodeURIComponent;
