import { test, expect } from "appwright";

// qgjob-fake: sleep=0.3

test("signs in with valid credentials", async ({ device }) => {
  await device.getByText("Skip").tap();
  await device.getById("login_email").fill("ada@example.com");
  await device.getById("login_password").fill("correct-horse-battery");
  await device.getByText("Sign in", { exact: true }).tap();
  await expect(device.getByText("Hi, Ada")).toBeVisible();
});

test("shows an error for a wrong password", async ({ device }) => {
  await device.getByText("Skip").tap();
  await device.getById("login_email").fill("ada@example.com");
  await device.getById("login_password").fill("wrong-password");
  await device.getByText("Sign in", { exact: true }).tap();
  await expect(device.getByText("Email or password is incorrect")).toBeVisible();
});
