import { test, expect } from "appwright";

// qgjob-fake: sleep=0.5

test.describe("checkout", () => {
  test("pays for a cart with a saved card", async ({ device }) => {
    await device.getByText("Skip").tap();
    await device.getByText("Running shoes").tap();
    await device.getByText("Add to cart").tap();
    await device.getById("cart_button").tap();
    await device.getByText("Checkout").tap();
    await device.getByText("Visa •••• 4242").tap();
    await device.getByText("Place order").tap();
    await expect(device.getByText("Order confirmed")).toBeVisible();
  });

  test("keeps the cart after the app restarts", async ({ device }) => {
    await device.getByText("Skip").tap();
    await device.getByText("Running shoes").tap();
    await device.getByText("Add to cart").tap();
    const badge = await device.getById("cart_badge").getText();
    expect(badge).toBe("1");
  });
});
