// The page's client: stream /stream?prompt=... into #answer with EventSource, redrawing at most every FLUSH_MS.
const FLUSH_MS = 50;
let source = null;

function startStream() {
  const prompt = document.querySelector("#prompt").value;
  const answer = document.querySelector("#answer");
  const status = document.querySelector("#status");
  if (source) source.close(); // one stream at a time: Start again replaces it
  answer.textContent = "";
  status.textContent = "waiting for the first token…";
  let buffer = "";
  let timer = null;
  const flush = () => {
    clearTimeout(timer);
    timer = null;
    if (buffer) answer.append(buffer); // one DOM update for everything that arrived since the last one
    buffer = "";
  };
  source = new EventSource(`stream?prompt=${encodeURIComponent(prompt)}`);
  source.onmessage = (event) => {
    buffer += JSON.parse(event.data).text;
    timer ??= setTimeout(flush, FLUSH_MS);
    status.textContent = "streaming…";
  };
  source.addEventListener("done", (event) => {
    source.close(); // or the browser reconnects when the server ends the stream, and asks again
    flush();
    const usage = JSON.parse(event.data).usage_metadata;
    status.textContent = `done · ${usage.total_token_count} tokens`;
  });
  source.addEventListener("error", (event) => {
    if (event.data !== undefined) { // the server's own `error` event: final
      source.close();
      flush();
      status.textContent = `error: ${JSON.parse(event.data).message}`;
    } else if (source.readyState === EventSource.CONNECTING) {
      status.textContent = "connection lost · reconnecting…"; // the browser retries by itself: don't close() here
    } else {
      status.textContent = "could not connect to the server";
    }
  });
}
