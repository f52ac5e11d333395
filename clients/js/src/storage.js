import { ActorbaseError } from "./errors.js";
import { encodePath, errorOf, parseBody } from "./http.js";

const CHUNK = 64 * 1024;

/** Files: upload with progress, signed URLs, list, delete. Browsers upload with
 * XMLHttpRequest (the only API that reports upload progress); Node streams a multipart
 * body through fetch and reports progress as the server takes each chunk. */
export class Storage {
  #http;
  #auth;

  constructor(http, auth) {
    this.#http = http;
    this.#auth = auth;
  }

  /** `data`: a Blob/File, ArrayBuffer, typed array or string. `onProgress({loaded,
   * total})`. `contentType` defaults to the Blob's type. → {path, url, size, contentType} */
  async upload(path, data, { onProgress, contentType } = {}) {
    const blob = toBlob(data, contentType);
    for (let attempt = 0; ; attempt++) {
      const token = await this.#auth.accessToken();
      const userId = this.#auth.user?.id ?? null;
      const result =
        typeof globalThis.XMLHttpRequest === "function"
          ? await this.#xhr(path, blob, token, onProgress)
          : await this.#fetch(path, blob, token, onProgress);
      if (result.status === 401 && token && attempt === 0 && (await this.#auth.refreshAfter401(token, userId))) {
        continue;
      }
      if (result.error) throw result.error;
      return result.body;
    }
  }

  async signedUrl(path, { expiresIn } = {}) {
    const q = expiresIn ? `?expiresIn=${encodeURIComponent(expiresIn)}` : "";
    return this.#http.request("GET", `/api/storage/${encodePath(path)}${q}`);
  }

  async list({ prefix, limit, cursor } = {}) {
    const params = new URLSearchParams();
    if (prefix !== undefined) params.set("prefix", prefix);
    if (limit !== undefined) params.set("limit", String(limit));
    if (cursor !== undefined) params.set("cursor", cursor);
    const q = params.toString();
    return this.#http.request("GET", `/api/storage${q ? `?${q}` : ""}`);
  }

  async remove(path) {
    await this.#http.request("DELETE", `/api/storage/${encodePath(path)}`);
  }

  #xhr(path, blob, token, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", this.#http.url("/api/storage/upload"));
      if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      // Progress counts the file's bytes (as in Node), not the multipart envelope's.
      xhr.upload.onprogress = (e) => {
        const share = e.total ? e.loaded / e.total : 0;
        onProgress?.({ loaded: Math.min(blob.size, Math.floor(share * blob.size)), total: blob.size });
      };
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          // not JSON
        }
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress?.({ loaded: blob.size, total: blob.size });
          resolve({ status: xhr.status, body });
        } else {
          resolve({ status: xhr.status, error: ActorbaseError.fromWire(body?.error, xhr.status) });
        }
      };
      xhr.onerror = () => resolve({ status: 0, error: ActorbaseError.network("upload failed") });
      const form = new FormData();
      form.append("path", path);
      form.append("file", blob, path.split("/").pop());
      xhr.send(form);
    });
  }

  async #fetch(path, blob, token, onProgress) {
    const boundary = `----actorbase${Math.random().toString(16).slice(2)}`;
    const name = path.split("/").pop().replace(/["\r\n]/g, "_");
    const enc = new TextEncoder();
    const head = enc.encode(
      `--${boundary}\r\nContent-Disposition: form-data; name="path"\r\n\r\n${path}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n` +
        `Content-Type: ${blob.type || "application/octet-stream"}\r\n\r\n`,
    );
    const tail = enc.encode(`\r\n--${boundary}--\r\n`);
    const bytes = new Uint8Array(await blob.arrayBuffer());
    const total = bytes.length;
    let offset = -1;
    const body = new ReadableStream({
      pull(controller) {
        if (offset === -1) {
          onProgress?.({ loaded: 0, total });
          controller.enqueue(head);
          offset = 0;
        } else if (offset < total) {
          const end = Math.min(total, offset + CHUNK);
          controller.enqueue(bytes.subarray(offset, end));
          offset = end;
          onProgress?.({ loaded: offset, total });
        } else {
          controller.enqueue(tail);
          controller.close();
        }
      },
    });
    const headers = { "Content-Type": `multipart/form-data; boundary=${boundary}` };
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await this.#http.fetch(this.#http.url("/api/storage/upload"), {
        method: "POST",
        headers,
        body,
        duplex: "half",
      });
    } catch (error) {
      return { status: 0, error: ActorbaseError.network(`upload: ${error?.message ?? error}`) };
    }
    if (!response.ok) return { status: response.status, error: await errorOf(response) };
    return { status: response.status, body: await parseBody(response) };
  }
}

function toBlob(data, contentType) {
  if (typeof Blob !== "undefined" && data instanceof Blob) {
    return contentType && contentType !== data.type ? new Blob([data], { type: contentType }) : data;
  }
  return new Blob([data], { type: contentType ?? (typeof data === "string" ? "text/plain" : "") });
}
