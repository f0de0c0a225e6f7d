import { test, expect } from "appwright";

test("first launch shows the welcome carousel and reaches the home screen", async ({
  device,
}) => {
  await expect(device.getByText("Welcome to Shoply")).toBeVisible();
  await device.getByText("Next", { exact: true }).tap();
  await expect(device.getByText("Track every order")).toBeVisible();
  await device.getByText("Next", { exact: true }).tap();
  await device.getByText("Get started").tap();
  await expect(device.getByText("Sign in")).toBeVisible();
});

test("skipping onboarding goes straight to sign in", async ({ device }) => {
  await device.getByText("Skip").tap();
  await expect(device.getById("login_email")).toBeVisible();
});
