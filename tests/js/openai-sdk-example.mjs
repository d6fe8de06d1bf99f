// The "OpenAI SDK" example of Cloudflare's "Using a dynamic route" page, with only the host
// changed (GATEWAY_HOST) and the placeholders filled from the environment.
import OpenAI from "openai";

const cloudflareToken = process.env.CF_AIG_TOKEN;
const accountId = process.env.ACCOUNT_ID;
const gatewayId = process.env.GATEWAY_ID;
const baseURL = `${process.env.GATEWAY_HOST}/v1/${accountId}/${gatewayId}/compat`;

const openai = new OpenAI({
  apiKey: cloudflareToken,
  baseURL,
});

try {
  const model = `dynamic/${process.env.ROUTE_NAME}`;
  const messages = [{ role: "user", content: "What is a neuron?" }];
  const chatCompletion = await openai.chat.completions.create({
    model,
    messages,
  });
  const response = chatCompletion.choices[0].message;
  console.log(JSON.stringify(response));
} catch (e) {
  console.error(e);
  process.exit(1);
}
