import { test, expect } from "appwright";

// Simulated devices only (qgjob's fake AppWright): the first attempt fails, the retry
// passes, so the job ends COMPLETED with outcome "flaky". Real AppWright ignores comments.
// qgjob-fake: outcome=flaky message="Element textContains(\"Running shoes\") was not found on the screen" sleep=0.2

test("finds products by name", async ({ device }) => {
  await device.getByText("Skip").tap();
  await device.getById("search_bar").tap();
  await device.getById("search_input").fill("running shoes");
  await expect(device.getByText("Running shoes")).toBeVisible();
});

test("shows a friendly message when nothing matches", async ({ device }) => {
  await device.getByText("Skip").tap();
  await device.getById("search_bar").tap();
  await device.getById("search_input").fill("zzzz-no-such-product");
  await expect(device.getByText(/No results for/)).toBeVisible();
});
