// The demo page: the card scores a sample customer; outcome events are listed.
const card = document.getElementById("card");
const events = document.getElementById("events");

document.getElementById("lang-en").addEventListener("click", () => card.setAttribute("lang", "en"));
document.getElementById("lang-zh").addEventListener("click", () => card.setAttribute("lang", "zh"));
document.getElementById("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem("tierwise.apiKey");
  location.reload();
});
card.addEventListener("tierwise-outcome", (e) => {
  const li = document.createElement("li");
  li.textContent = `${e.detail.date} ${e.detail.customer_id} ${e.detail.action_id}: ${e.detail.outcome}`;
  events.append(li);
});

const sample = await fetch("/ui/sample-customer.json").then((r) => r.json());
card.setAttribute("customer", sample.customer_id);
card.features = sample.features;
