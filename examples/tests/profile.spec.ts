import { test, expect } from "appwright";

// Simulated devices only (qgjob's fake AppWright): this spec fails, to show how a failure
// looks (error message, file:line, JUnit <failure>). Delete the line below to make it pass.
// qgjob-fake: outcome=fail message="Element text(\"Profile saved\") was not found on the screen" test="edits"

test("shows the signed-in user's name and email", async ({ device }) => {
  await device.getByText("Skip").tap();
  await device.getById("tab_profile").tap();
  await expect(device.getByText("Ada Lovelace")).toBeVisible();
  await expect(device.getByText("ada@example.com")).toBeVisible();
});

test("edits the display name", async ({ device }) => {
  await device.getByText("Skip").tap();
  await device.getById("tab_profile").tap();
  await device.getByText("Edit profile").tap();
  await device.getById("profile_name").fill("Ada King");
  await device.getByText("Save").tap();
  await expect(device.getByText("Profile saved", { exact: true })).toBeVisible();
});
