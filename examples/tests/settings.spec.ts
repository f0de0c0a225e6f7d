import { test, expect } from "appwright";

test("switches the app to dark mode", async ({ device }) => {
  await device.getByText("Skip").tap();
  await device.getById("tab_settings").tap();
  await device.getByText("Appearance").tap();
  await device.getByText("Dark", { exact: true }).tap();
  await expect(device.getByText("Dark theme on")).toBeVisible();
});

test("turns off marketing notifications", async ({ device }) => {
  await device.getByText("Skip").tap();
  await device.getById("tab_settings").tap();
  await device.getByText("Notifications").tap();
  await device.getById("toggle_marketing").tap();
  await expect(device.getByText("You will not receive offers")).toBeVisible();
});

// Behind a feature flag that is off in release builds.
test.skip("exports account data", async ({ device }) => {
  await device.getById("tab_settings").tap();
  await device.getByText("Export my data").tap();
});
