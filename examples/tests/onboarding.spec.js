// The same first-launch check as onboarding.spec.ts, written in JavaScript: AppWright (like
// Playwright) runs .js specs too. The README's first `qgjob submit` names this file.
const { test, expect } = require("appwright");

test("first launch reaches sign in", async ({ device }) => {
  await expect(device.getByText("Welcome to Shoply")).toBeVisible();
  await device.getByText("Get started").tap();
  await expect(device.getByText("Sign in")).toBeVisible();
});
