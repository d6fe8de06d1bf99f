// The example of Cloudflare's "Non-realtime WebSockets API" page, with only the host changed
// (GATEWAY_HOST, ws://...) and the placeholders filled from the environment. It prints the
// first message the gateway sends back, then closes the connection.
import WebSocket from "ws";

const ws = new WebSocket(
  `${process.env.GATEWAY_HOST}/v1/${process.env.ACCOUNT_ID}/${process.env.GATEWAY_ID}/`,
  {
    headers: {
      "cf-aig-authorization": `Bearer ${process.env.CF_AIG_TOKEN}`,
    },
  },
);

ws.on("open", () => {
  ws.send(
    JSON.stringify({
      type: "universal.create",
      request: {
        eventId: "my-request",
        provider: "workers-ai",
        endpoint: "@cf/meta/llama-3.1-8b-instruct",
        headers: {
          Authorization: `Bearer ${process.env.WORKERS_AI_TOKEN}`,
          "Content-Type": "application/json",
        },
        query: {
          prompt: "tell me a joke",
        },
      },
    }),
  );
});

ws.on("message", (message) => {
  console.log(message.toString());
  ws.close();
});

ws.on("error", (err) => {
  console.error(err);
  process.exit(1);
});
