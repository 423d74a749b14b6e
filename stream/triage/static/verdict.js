// Signs verdicts in the browser with the analyst's Ed25519 key (WebCrypto). The key is imported from
// the analyst's PEM file as a non-extractable CryptoKey and kept in this browser's IndexedDB, so the
// app's server never sees it. Flow: ask the server for the record to sign, sign its canonical bytes,
// send the record with the signature back (stream/triage/verdicts.py checks and publishes it).
"use strict";

const DB = "privwatch-triage", STORE = "keys";

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function keyStore(mode, action) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const req = action(db.transaction(STORE, mode).objectStore(STORE));
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function slot() {
  const analyst = document.getElementById("signing").dataset.analyst;
  return analyst + "/" + document.getElementById("key-id").value;
}

function pemToDer(pem) {
  const body = pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
}

async function importKeyFile(file) {
  const key = await crypto.subtle.importKey("pkcs8", pemToDer(await file.text()), { name: "Ed25519" }, false, ["sign"]);
  await keyStore("readwrite", (s) => s.put(key, slot()));
}

async function loadedKey() {
  return keyStore("readonly", (s) => s.get(slot()));
}

async function showKeyStatus() {
  const status = document.getElementById("key-status");
  const key = await loadedKey();
  status.textContent = key ? "key " + document.getElementById("key-id").value + " loaded" : "no key loaded";
  status.classList.toggle("ready", Boolean(key));
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": document.querySelector("meta[name=csrf-token]").content },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const answer = await response.json().catch(() => ({ error: "HTTP " + response.status }));
  if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
  return answer;
}

async function signAndSend(form, choices) {
  const key = await loadedKey();
  if (!key) throw new Error("load your key file first (Signing key, above)");
  const prepared = await post(form.dataset.prepare, { ...choices, key_id: document.getElementById("key-id").value });
  const toSign = Uint8Array.from(atob(prepared.to_sign), (c) => c.charCodeAt(0));
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, key, toSign);
  return post(form.dataset.submit, { record: { ...prepared.record, signature: base64url(signature) } });
}

function wire(form, choicesOf) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = form.querySelector(".verdict-result");
    out.textContent = "signing…";
    try {
      const answer = await signAndSend(form, choicesOf(event));
      out.textContent = "published " + answer.verdict_id;
      out.classList.add("done");
      window.location.reload();
    } catch (error) {
      out.textContent = error.message;
      out.classList.add("failed");
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const signing = document.getElementById("signing");
  if (!signing) return;
  document.getElementById("key-file").addEventListener("change", async (event) => {
    const status = document.getElementById("key-status");
    try {
      await importKeyFile(event.target.files[0]);
    } catch (error) {
      status.textContent = "not an Ed25519 private key (PEM, unencrypted): " + error.message;
      return;
    }
    event.target.value = "";
    showKeyStatus();
  });
  document.getElementById("key-id").addEventListener("change", showKeyStatus);
  document.getElementById("key-forget").addEventListener("click", async () => {
    await keyStore("readwrite", (s) => s.delete(slot()));
    showKeyStatus();
  });
  showKeyStatus();
  document.querySelectorAll("form.verdict-form").forEach((form) => wire(form, (event) => {
    const data = new FormData(form);
    return {
      alert_id: form.dataset.alertId, verdict: event.submitter.value, scope: data.get("scope"),
      days: data.get("days"), resource_id: data.get("resource_id"), note: data.get("note"),
    };
  }));
  document.querySelectorAll("form.revoke-form").forEach((form) => wire(form, () => ({
    alert_id: form.dataset.alertId, revokes: form.dataset.revokes,
  })));
});
