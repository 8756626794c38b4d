// Recipes module.
